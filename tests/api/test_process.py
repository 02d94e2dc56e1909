import platform

import pytest

from shoploop.api.process import limit_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="arena cap is a glibc setting")
def test_malloc_arena_cap_is_accepted_by_glibc():
    assert limit_malloc_arenas(2) is True
