"""XXH3-64 with a seed, in pure Python, for inputs of up to 240 bytes.

ctrd maps a categorical value to a table row with
``row = 1 + floor(XXH3_64bits_withSeed(bytes, seed) * buckets / 2**64)``
(docs/MODEL_FORMAT.md, "Feature encoding"). A model trained in PyTorch
with ``mapping: hash`` must have been trained on exactly those rows, so
the training pipeline needs the same hash; this module gives it without
a compiled dependency. ctrd accepts categorical values of at most 64
bytes, well inside the short-input paths of XXH3 (0..240 bytes) written
out here from the reference (xxHash 0.8, ``xxhash.h``). The tests compare
it with libxxhash on every length from 0 to 240.
"""

_M64 = (1 << 64) - 1

_P32_1 = 0x9E3779B1
_P32_2 = 0x85EBCA77
_P32_3 = 0xC2B2AE3D
_P64_1 = 0x9E3779B185EBCA87
_P64_2 = 0xC2B2AE3D27D4EB4F
_P64_3 = 0x165667B19E3779F9
_P64_4 = 0x85EBCA77C2B2AE63
_P64_5 = 0x27D4EB2F165667C5
_PMX1 = 0x165667919E3779F9
_PMX2 = 0x9FB21C651E98DF25

# XXH3_kSecret, the 192-byte default secret.
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e")

MAX_LEN = 240


def _r64(b, i):
    return int.from_bytes(b[i:i + 8], "little")


def _r32(b, i):
    return int.from_bytes(b[i:i + 4], "little")


def _rotl64(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _swap32(x):
    return int.from_bytes(x.to_bytes(4, "little"), "big")


def _swap64(x):
    return int.from_bytes(x.to_bytes(8, "little"), "big")


def _mul128_fold64(a, b):
    p = a * b
    return (p & _M64) ^ (p >> 64)


def _xxh64_avalanche(h):
    h ^= h >> 33
    h = (h * _P64_2) & _M64
    h ^= h >> 29
    h = (h * _P64_3) & _M64
    return h ^ (h >> 32)


def _avalanche(h):
    h ^= h >> 37
    h = (h * _PMX1) & _M64
    return h ^ (h >> 32)


def _rrmxmx(h, n):
    h ^= _rotl64(h, 49) ^ _rotl64(h, 24)
    h = (h * _PMX2) & _M64
    h ^= (h >> 35) + n
    h = (h * _PMX2) & _M64
    return h ^ (h >> 28)


def _mix16(b, i, s, seed):
    lo = _r64(b, i)
    hi = _r64(b, i + 8)
    return _mul128_fold64(lo ^ ((_r64(_SECRET, s) + seed) & _M64),
                          hi ^ ((_r64(_SECRET, s + 8) - seed) & _M64))


def xxh3_64(data, seed=0):
    """XXH3_64bits_withSeed(data, len(data), seed) for len(data) <= 240."""
    b = bytes(data)
    n = len(b)
    seed &= _M64
    s = _SECRET
    if n == 0:
        return _xxh64_avalanche(seed ^ (_r64(s, 56) ^ _r64(s, 64)))
    if n <= 3:
        c1, c2, c3 = b[0], b[n >> 1], b[n - 1]
        combined = (c1 << 16) | (c2 << 24) | c3 | (n << 8)
        bitflip = ((_r32(s, 0) ^ _r32(s, 4)) + seed) & _M64
        return _xxh64_avalanche(combined ^ bitflip)
    if n <= 8:
        seed ^= _swap32(seed & 0xFFFFFFFF) << 32
        in1 = _r32(b, 0)
        in2 = _r32(b, n - 4)
        bitflip = ((_r64(s, 8) ^ _r64(s, 16)) - seed) & _M64
        in64 = (in2 + (in1 << 32)) & _M64
        return _rrmxmx(in64 ^ bitflip, n)
    if n <= 16:
        bitflip1 = ((_r64(s, 24) ^ _r64(s, 32)) + seed) & _M64
        bitflip2 = ((_r64(s, 40) ^ _r64(s, 48)) - seed) & _M64
        lo = _r64(b, 0) ^ bitflip1
        hi = _r64(b, n - 8) ^ bitflip2
        acc = (n + _swap64(lo) + hi + _mul128_fold64(lo, hi)) & _M64
        return _avalanche(acc)
    if n <= 128:
        acc = (n * _P64_1) & _M64
        if n > 32:
            if n > 64:
                if n > 96:
                    acc += _mix16(b, 48, 96, seed)
                    acc += _mix16(b, n - 64, 112, seed)
                acc += _mix16(b, 32, 64, seed)
                acc += _mix16(b, n - 48, 80, seed)
            acc += _mix16(b, 16, 32, seed)
            acc += _mix16(b, n - 32, 48, seed)
        acc += _mix16(b, 0, 0, seed)
        acc += _mix16(b, n - 16, 16, seed)
        return _avalanche(acc & _M64)
    if n <= MAX_LEN:
        acc = (n * _P64_1) & _M64
        for i in range(8):
            acc += _mix16(b, 16 * i, 16 * i, seed)
        acc = _avalanche(acc & _M64)
        for i in range(8, n // 16):
            acc += _mix16(b, 16 * i, 16 * (i - 8) + 3, seed)
        acc += _mix16(b, n - 16, 136 - 17, seed)
        return _avalanche(acc & _M64)
    raise ValueError("xxh3_64: inputs over %d bytes are not implemented (got %d)"
                     % (MAX_LEN, n))
