# Environment for the GPU scripts on a machine without a package index, in one shell:
#
#     source benchmarks/gpu_env.sh [LOGDIR]
#
# - mamba_ssm as the peer: from a selective_scan_cuda.so built earlier on the same kind of machine
#   and kept beside the source archive as xz parts (.gpu/so/ssc.so.xz.*; ~36 MB instead of a
#   2-minute build), else built by .gpu/mamba_ssm.sh (shared/gpu/mamba_ssm.sh prepare .gpu);
# - ssmzoo's entry points from a wheel of this checkout in .gpu/whl (pip wheel --no-deps
#   --no-build-isolation -w .gpu/whl .), with the checkout, plugins/ and kernels/ ahead of it.
# To keep a fresh build for the next machine: xz -T16 -c /tmp/mamba_ssm_build/selective_scan_cuda.so
#   | split -b 15M - .gpu/so/ssc.so.xz.
log=${1:-/tmp}
export PYTHONUNBUFFERED=1
_ssmzoo_build() {
  source .gpu/mamba_ssm.sh build .gpu > "$log/build.log" 2>&1
  tail -2 "$log/build.log"
}
if ls .gpu/so/ssc.so.xz.* > /dev/null 2>&1; then
  mkdir -p /tmp/ssc && cat .gpu/so/ssc.so.xz.* | xz -d -T16 > /tmp/ssc/selective_scan_cuda.so
  export PYTHONPATH="$PWD/.gpu/mamba_src:/tmp/ssc${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c "import torch, mamba_ssm, selective_scan_cuda; print('mamba_ssm', mamba_ssm.__version__, 'from the kept build')" \
    || _ssmzoo_build
elif [ -d .gpu/mamba_src ]; then
  _ssmzoo_build
fi
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl > /dev/null 2>&1
export PYTHONPATH="$PWD:$PWD/plugins:$PWD/kernels:$PYTHONPATH:/tmp/site"
python3 -m ssmzoo backends 2>&1 | grep '^[a-z]'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, '| triton', triton.__version__)"
