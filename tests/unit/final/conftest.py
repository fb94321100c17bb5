from tests.unit.spec.conftest import specs

__all__ = ["specs"]
