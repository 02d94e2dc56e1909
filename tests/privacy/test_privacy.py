import stat

import numpy as np
import pytest

from shoploop.privacy import Pseudonymizer, laplace_counts


def test_pseudonyms_are_stable_keyed_and_idempotent():
    a, b = Pseudonymizer(b"k" * 32), Pseudonymizer(b"j" * 32)
    assert a("alice@example.com") == a("alice@example.com")
    assert a("alice@example.com") != a("bob@example.com")
    assert a("alice@example.com") != b("alice@example.com")
    assert a(a("alice")) == a("alice")
    assert "alice" not in a("alice")


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    first = Pseudonymizer.from_home(tmp_path)
    assert stat.S_IMODE((tmp_path / "pseudonym.key").stat().st_mode) == 0o600
    assert Pseudonymizer.from_home(tmp_path)("u1") == first("u1")


def test_short_key_is_rejected():
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymizer(b"short")


def test_laplace_noise_is_unbiased_and_scaled():
    draws = np.array([laplace_counts({"x": 100.0}, epsilon=0.5, seed=s)["x"] for s in range(4000)])
    assert draws.mean() == pytest.approx(100.0, abs=0.25)
    # Laplace(b) has std sqrt(2) * b, b = 1 / 0.5 = 2
    assert draws.std() == pytest.approx(2 * np.sqrt(2), rel=0.08)
    assert laplace_counts({"x": 0.0}, epsilon=0.1, seed=1)["x"] >= 0.0
    with pytest.raises(ValueError, match="epsilon"):
        laplace_counts({"x": 1.0}, epsilon=0)


@pytest.mark.parametrize(("key", "problem"), [("not-hex", "expected hex digits"), ("abcd", "too short")])
def test_a_bad_key_is_named_where_it_comes_from(tmp_path, monkeypatch, key, problem):
    monkeypatch.setenv("SHOPLOOP_PSEUDONYM_KEY", key)
    with pytest.raises(ValueError, match=rf"^\$SHOPLOOP_PSEUDONYM_KEY is .*{problem}"):
        Pseudonymizer.from_home(tmp_path)
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY")
    (tmp_path / "pseudonym.key").write_text("zz\n")
    with pytest.raises(ValueError, match=r"pseudonym\.key is not a pseudonymisation key"):
        Pseudonymizer.from_home(tmp_path)
