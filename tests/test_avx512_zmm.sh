#!/bin/bash
# The per-ISA kernel objects really hold the instructions their names claim:
# kernels_avx512.o (the native build) has FMAs on zmm registers, and
# kernels_avx2.o has FMAs on ymm registers and none on zmm; the row-wise
# ops (LayerNorm over rows: a register transpose, a square root and
# divisions a row per lane) are vector code too. A build that lost its -m flags, or a kernel
# the compiler quietly scalarized, fails. The SIMDe build of the AVX-512
# source (tests/kernels_avx512_simde.o, compared bit for bit with the
# scalar ops by test_kernels, test_forward and test_interact) holds every
# op under its _simde name; the same for the quantized-row decoders
# (quant_avx512.o, tests/quant_avx512_simde.o: test_quant, test_embed_quant).
# B names the build directory (default build). Exit 0 pass, 1 fail.
set -u
B=${B:-build}
fail=0

check_obj() { # obj regex description
    local obj=$1 re=$2 what=$3 n
    if [ ! -f "$obj" ]; then
        echo "FAIL: $obj not built"; fail=1; return
    fi
    n=$(objdump -d --no-show-raw-insn "$obj" | grep -Ec "$re")
    if [ "$n" -gt 0 ]; then
        echo "ok: $obj has $n $what"
    else
        echo "FAIL: $obj has no $what"; fail=1
    fi
}

if ! command -v objdump >/dev/null; then
    echo "FAIL: objdump is not installed (binutils; \`make deps\` installs it)"; exit 1
fi
check_obj "$B/model/kernels_avx512.o" 'vfmadd[0-9]+ps[[:space:]].*%zmm' "vfmadd*ps on zmm"
check_obj "$B/model/kernels_avx512.o" 'vbroadcastss[[:space:]].*%zmm' "vbroadcastss to zmm"
check_obj "$B/model/kernels_avx512.o" 'vmovups[[:space:]].*%zmm[0-9]+\{%k[1-7]\}' "masked zmm loads/stores"
check_obj "$B/model/kernels_avx2.o" 'vfmadd[0-9]+ps[[:space:]].*%ymm' "vfmadd*ps on ymm"
check_obj "$B/model/kernels_avx2.o" 'vmaskmovps' "vmaskmovps tails"
check_obj "$B/model/kernels_avx512.o" 'vshuff32x4[[:space:]].*%zmm' "vshuff32x4 on zmm (LayerNorm's transpose)"
check_obj "$B/model/kernels_avx512.o" 'vsqrtps[[:space:]].*%zmm' "vsqrtps on zmm (LayerNorm)"
check_obj "$B/model/kernels_avx2.o" 'vperm2f128[[:space:]].*%ymm' "vperm2f128 on ymm (LayerNorm's transpose)"
check_obj "$B/model/kernels_avx2.o" 'vsqrtps[[:space:]].*%ymm' "vsqrtps on ymm (LayerNorm)"
simde="$B/tests/kernels_avx512_simde.o"
for f in linear ln_rows pool fma add; do
    if [ ! -f "$simde" ]; then
        echo "FAIL: $simde not built"; fail=1; break
    elif nm "$simde" | grep -q " T ctr__${f}_avx512_simde\$"; then
        echo "ok: $simde defines ctr__${f}_avx512_simde"
    else
        echo "FAIL: $simde lacks ctr__${f}_avx512_simde"; fail=1
    fi
done
# The quantized-row decoders (quant.h): F16C's conversion and the int8
# FMA on the ISA's registers, and every decoder in the SIMDe object.
check_obj "$B/model/quant_avx512.o" 'vcvtph2ps[[:space:]].*%zmm' "vcvtph2ps to zmm (f16 rows)"
check_obj "$B/model/quant_avx512.o" 'vfmadd[0-9]+ps[[:space:]].*%zmm' "vfmadd*ps on zmm (int8 rows)"
check_obj "$B/model/quant_avx2.o" 'vcvtph2ps[[:space:]].*%ymm' "vcvtph2ps to ymm (f16 rows)"
qsimde="$B/tests/quant_avx512_simde.o"
for f in fp16 fp16_acc fp16_rows fp16_pool int8 int8_acc int8_rows int8_pool; do
    if [ ! -f "$qsimde" ]; then
        echo "FAIL: $qsimde not built"; fail=1; break
    elif nm "$qsimde" | grep -q " T ctr__dequant_${f}_avx512_simde\$"; then
        echo "ok: $qsimde defines ctr__dequant_${f}_avx512_simde"
    else
        echo "FAIL: $qsimde lacks ctr__dequant_${f}_avx512_simde"; fail=1
    fi
done
if [ -f "$B/model/kernels_avx2.o" ] &&
   objdump -d --no-show-raw-insn "$B/model/kernels_avx2.o" | grep -q '%zmm'; then
    echo "FAIL: $B/model/kernels_avx2.o uses zmm registers"; fail=1
fi
# The scalar references are built without -m flags: no ymm/zmm there.
for o in kernels kernels_scalar; do
    if [ -f "$B/model/$o.o" ] &&
       objdump -d --no-show-raw-insn "$B/model/$o.o" | grep -Eq '%[yz]mm'; then
        echo "FAIL: $B/model/$o.o uses ymm/zmm registers"; fail=1
    fi
done
[ $fail -eq 0 ] && echo "pass"
exit $fail
