"""Tests start their own redis-server through `runtime.local_redis`."""

from runtime.local_redis import RedisServer, find_redis_server, free_port

__all__ = ["RedisServer", "find_redis_server", "free_port"]
