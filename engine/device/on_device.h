// The one dispatch of ops*.cpp: on a CUDA backend, `cuda_call` (which may name
// `stream`, the backend's) and return; else fall through to the CPU kernel.
#pragma once

#ifdef UNET_CUDA
#define UNET_ON_DEVICE(be, cuda_call)    \
  if ((be).is_cuda()) {                  \
    const Stream stream = (be).stream(); \
    return cuda_call;                    \
  }
#else
#define UNET_ON_DEVICE(be, cuda_call)
#endif
