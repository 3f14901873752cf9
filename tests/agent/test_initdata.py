"""Init-data: the TOML parsed as CoCo writes it, and the start-up check against the TEE's binding (TDX
MRCONFIGID on the fake device; the TPM's PCR 8 is covered on swtpm in tests/integration/test_agent_initdata.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from attestation_agent.attesters.sample import SampleAttester
from attestation_agent.attesters.tdx import TdxAttester
from attestation_agent.initdata import InitDataError, bind, parse

from tests.tdx.fake_device import FakeTdxDevice
from tests.tdx.make_test_chain import DcapPki, make_pki

BODY = 'version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\n"aa.toml" = "x"\nrole = "db"\n'


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def test_parse() -> None:
    init = parse(BODY)
    assert init.algorithm == "sha384"
    assert init.digest == hashlib.sha384(BODY.encode()).digest()
    assert init.data == {"aa.toml": "x", "role": "db"}
    assert parse('algorithm = "sha256"\n').data == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not = = toml", "not TOML"),
        ('algorithm = "md5"', "algorithm is 'md5'"),
        ("algorithm = 5", "algorithm is 5"),
        ("data = 5", "[data] is not a table"),
        ("version = 1", "version is not a string"),
        ("x = '" + "a" * 300_000 + "'", "at most 262144"),
    ],
)
def test_bad_init_data(body: str, message: str) -> None:
    with pytest.raises(InitDataError) as raised:
        parse(body)
    assert message in str(raised.value)


def test_tdx_mrconfigid_must_carry_the_digest(tmp_path: Path, pki: DcapPki) -> None:
    digest = hashlib.sha384(BODY.encode()).digest()
    with FakeTdxDevice(tmp_path / "good", pki, mr_config_id=digest):
        bind(TdxAttester(tmp_path / "good"), parse(BODY))
    with FakeTdxDevice(tmp_path / "bad", pki, mr_config_id=b"\x07" * 48), pytest.raises(InitDataError) as raised:
        bind(TdxAttester(tmp_path / "bad"), parse(BODY))
    assert str(raised.value).startswith("init_data_mismatch: MRCONFIGID is " + "07" * 48)
    assert digest.hex() in str(raised.value)
    with pytest.raises(InitDataError, match="MRCONFIGID holds 48"):
        bind(TdxAttester(tmp_path / "bad"), parse('algorithm = "sha512"\n'))


def test_sample_tee_has_no_binding() -> None:
    bind(SampleAttester(), parse(BODY))  # nothing to compare: accepted as given
