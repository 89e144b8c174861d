"""The small-tensor fast paths of the operators and methods (issue #12): they must give
what the general paths give, keep no references, and not grow memory over many calls."""
import os
import sys

import pytest

import ferry


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_bare_sum_and_mean_match_the_parsed_forms():
    t = ferry.tensor([[1.0, 2.0], [3.0, 4.0]])
    for bare, parsed in [(t.sum(), t.sum(None, False)), (t.sum(), t.sum(**{})),
                         (t.mean(), t.mean(dim=None)), (t.sum(), t.sum(dtype=None))]:
        assert bare.shape == parsed.shape == ()
        assert bare.dtype is parsed.dtype
        assert bare.item() == parsed.item()
    assert t.sum().item() == 10.0 and t.mean().item() == 2.5
    assert t.sum(dtype=ferry.float64).dtype is ferry.float64
    assert t.sum(1, keepdim=True).tolist() == [[3.0], [7.0]]


def test_sum_errors_keep_their_types_and_words():
    t = ferry.ones(2)
    with pytest.raises(TypeError, match="sum\\(\\): argument 'keepdim' must be bool, not int"):
        t.sum(0, keepdim=1)
    with pytest.raises(TypeError):
        t.sum(dim=0, bogus=1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.mean(3)
    with pytest.raises(TypeError):
        t.sum(dtype="float32")


def test_int_keys_take_the_basic_path():
    t = ferry.tensor([[1, 2], [3, 4]])
    assert t[0].tolist() == [1, 2] and t[-1, 1].item() == 4
    assert t[True].shape == (1, 2, 2)  # a bool is an advanced index, not the int 1
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size 2"):
        t[2]


def test_fast_paths_keep_no_references():
    a = ferry.ones(1)
    two, none = 2, None
    before = [sys.getrefcount(x) for x in (a, two, none)]
    for _ in range(1000):
        a + a
        a * two
        a.sum()
        a.sum(dtype=none)
        a.mean(0)
        a[0]
    assert [sys.getrefcount(x) for x in (a, two, none)] == before


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="RSS is read from /proc/self/statm (Linux only)")
def test_many_small_ops_do_not_grow_memory():
    a = ferry.ones(1)

    def run(n):
        for _ in range(n):
            a + a
            a * 2
            a.sum()
            a[0]
            kept = [a + 1.0 for _ in range(10)]
            del kept

    run(20000)  # warms the caching allocator and Python's free lists
    start = _rss_bytes()
    run(100000)
    grown = _rss_bytes() - start
    # A live 1-element tensor takes about 430 bytes: one leaked a round would be 40 MB.
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB over 1e5 rounds of small ops"


def test_zero_is_fill_zero():
    np = pytest.importorskip("numpy")
    for t in (ferry.tensor([True, False]), ferry.tensor([3, -4], dtype=ferry.int8),
              ferry.ones(2, 2)):
        assert t.zero_() is t and t.tolist() == ferry.zeros_like(t).tolist()
    arr = np.ones(3, dtype=np.float32)
    arr.setflags(write=False)
    t = ferry.from_numpy(arr)
    with pytest.raises(RuntimeError) as fill_error:
        t.fill_(0)
    with pytest.raises(RuntimeError) as zero_error:
        t.zero_()
    assert str(zero_error.value) == str(fill_error.value)
    assert "read-only" in str(zero_error.value)


def test_new_factories_take_self_dtype_and_device():
    x = ferry.ones(2, dtype=ferry.float64)
    assert x.new_zeros(3).dtype is ferry.float64 and x.new_zeros(3).tolist() == [0.0] * 3
    assert x.new_ones((1, 2), dtype=ferry.int32).dtype is ferry.int32
    assert x.new_full((2,), 7).tolist() == [7.0, 7.0]
    assert x.new_tensor([1]).dtype is ferry.float64
    assert x.new_empty(2, device=None).device == x.device
    with pytest.raises(TypeError):
        x.new_zeros(2, bogus=1)
