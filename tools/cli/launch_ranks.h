// unet train --ranks N: this machine's own launcher, with the semantics of
// `srun -n N unet train ...`: N copies of the command as ranks 0..N-1 of one
// data-parallel run (RANK, WORLD_SIZE, LOCAL_RANK and a UNET_JOB_ID unique to
// the launch), the same global batch, one run folder that rank 0 writes.
//
// The ranks share the cores this process may use (its affinity): each rank is
// pinned to its own slice of them and sizes its threads to it
// (OMP_NUM_THREADS), so that ranks never oversubscribe the machine. SIGTERM
// and SIGUSR1 to the launcher reach every rank (one checkpoint, exit 75), and
// so does its end: a rank whose launcher is gone gets SIGTERM. A rank that fails (a non-zero status other than 75, or a signal) ends
// the run: the launcher names it and how it ended, and the others, which lose
// it at their next collective, are killed if they have not ended 30 s later.
#pragma once

#include <string>
#include <vector>

namespace unet {

// Runs `argv` (this command, which sees WORLD_SIZE and trains as a rank) as
// `ranks` processes and returns the command's exit status: 0 when every rank
// finished, 75 when they stopped on a signal with the checkpoint written, 1
// when one failed. The ranks meet in rendezvous_root/<the launch's job name>,
// which is removed at the end.
int launch_ranks(int ranks, const std::vector<std::string>& argv, const std::string& rendezvous_root);

}  // namespace unet
