"""A local emulator of AWS Lambda: the Invoke API (what boto3 calls) and the Runtime API (what
`awslambdaric` workers call), with per-memory-size pools of real worker processes."""

from runtime.lambda_local.server import FunctionConfig, LambdaEmulator

__all__ = ["FunctionConfig", "LambdaEmulator"]
