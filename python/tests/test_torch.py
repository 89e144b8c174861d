"""Exchange with PyTorch, when it is installed: DLPack both ways without a copy, and the
NumPy bridge between the two. Skipped, with the reason printed, when torch is missing."""
import pytest

import ferry

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; the ferry <-> torch DLPack tests need it")


def test_torch_to_ferry_shares_memory():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    f = ferry.from_dlpack(t)
    assert f.tolist() == t.tolist() and f.dtype is ferry.float32
    f.add_(1)
    assert t[0, 0].item() == 1.0
    assert ferry.from_dlpack(t[:, 1]).tolist() == [2.0, 5.0]


def test_ferry_to_torch_shares_memory():
    f = ferry.arange(4, dtype=ferry.float64)
    t = torch.from_dlpack(f)
    assert t.dtype == torch.float64 and t.tolist() == [0.0, 1.0, 2.0, 3.0]
    t += 1
    assert f.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_bfloat16_both_ways():
    t = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    f = ferry.from_dlpack(t)
    assert f.dtype is ferry.bfloat16 and f.tolist() == [1.5, -2.0]
    back = torch.from_dlpack(f)
    assert back.dtype == torch.bfloat16 and back.tolist() == [1.5, -2.0]


def test_same_errors_as_torch():
    ft = ferry.tensor([1.0], requires_grad=True)
    tt = torch.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError) as fe:
        ft.numpy()
    with pytest.raises(RuntimeError) as te:
        tt.numpy()
    assert str(fe.value) == str(te.value)


def test_cuda_exchange():
    if not (torch.cuda.is_available() and ferry.cuda.is_available()):
        pytest.skip("needs CUDA in both torch and ferry")
    t = torch.arange(4, dtype=torch.float32, device="cuda")
    f = ferry.from_dlpack(t)
    assert str(f.device) == "cuda:0" and f.cpu().tolist() == [0.0, 1.0, 2.0, 3.0]
    back = torch.from_dlpack(f)
    assert back.device.type == "cuda" and back.data_ptr() == t.data_ptr()
