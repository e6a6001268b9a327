"""The real executor: Redis storage, the AWS Lambda backend and its local emulator, and the
client API that runs a plan for real."""
