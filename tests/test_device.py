from __future__ import annotations

import pytest
import torch

from fedenv.device import check_device, resolve_device, resolve_dtype
from fedenv.errors import ConfigError


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available") as info:
        resolve_device("cuda")
    assert info.value.field == "device"


@pytest.mark.parametrize("bad", ["tpu", "gpu0", 3, "cuda:x", "mps", "mps:0"])
def test_unknown_devices_are_rejected(bad):
    with pytest.raises(ConfigError, match="device") as info:
        resolve_device(bad)
    assert info.value.field == "device"
    with pytest.raises(ConfigError) as checked:
        check_device(bad)
    assert checked.value.problem == info.value.problem  # one check, one message


def test_mps_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"'mps' is not supported \(MPS has no float64\); use auto"):
        check_device("mps")


@pytest.mark.parametrize("good", ["auto", "cpu", "cuda", "cuda:1"])
def test_the_device_names_fedenv_runs_on(good):
    assert check_device(good) == good


def test_dtypes():
    assert resolve_dtype("auto", "cpu") == torch.float32
    if torch.cuda.is_available():
        assert resolve_dtype("auto", "cuda") in (torch.bfloat16, torch.float16)
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert resolve_dtype("float16") == torch.float16
    assert resolve_dtype(torch.float32) == torch.float32
    for bad in ("fp8", "int8", torch.int64):
        with pytest.raises(ConfigError, match="dtype"):
            resolve_dtype(bad)
