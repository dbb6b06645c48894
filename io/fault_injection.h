// The fault suite's hook (tests/test_faults.cpp): with UNET_FAULT=<point>:<n>[:<action>]
// in the environment, the n-th pass (counting from 1) through the fault point
// named <point> fails as a full disk would ("fail", the default), raises SIGTERM
// in the process ("term"), or ends it at once with SIGKILL ("kill"). Without
// UNET_FAULT every point is a no-op. The points:
//   write       every step of writing a file or a checkpoint: a file's write,
//               its flush to disk, its rename; a checkpoint folder's creation,
//               flush and rename, and the `latest` link
//   step        the start of each training step
//   validation  the start of each validation during training
#pragma once

namespace unet {

// True when the caller must fail here as if the disk were full (errno is then ENOSPC).
bool fault_at(const char* point);

}  // namespace unet
