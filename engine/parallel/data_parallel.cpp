#include "engine/parallel/data_parallel.h"

#include <vector>

namespace unet {

DataParallel::DataParallel(UNet& model, Communicator& host, Communicator& tensors, int64_t per_rank,
                           bool sync_batchnorm)
    : model_(model), host_(host) {
  const int64_t n_params = model.parameter_count();
  tensors.broadcast(model.device_params(), n_params, 0);
  tensors.broadcast(model.device_state(), static_cast<int64_t>(model.state().size()), 0);
  std::vector<int64_t> offsets;
  for (const ParamInfo& p : model.param_table()) offsets.push_back(p.offset);
  reducer_ = std::make_unique<GradientReducer>(tensors, model.device_grads(), n_params, offsets);
  ParallelHooks hooks;
  hooks.first_sample = host.rank() * per_rank;
  // One thread talks at a time, in the same order on every rank: synchronized
  // batch norm's sums go during backward, so the buckets then wait for its end.
  if (sync_batchnorm && model.config().norm == NormChoice::batch)
    hooks.norm_sums = [&host](double* s, int64_t n) { host.all_reduce_sum(s, n); };
  else if (!model.backend().is_cuda())  // on a GPU the buckets go after backward (finish())
    hooks.grads_ready = [r = reducer_.get()](int64_t first) { r->ready(first); };
  model.set_parallel(std::move(hooks));
}

DataParallel::~DataParallel() { model_.set_parallel({}); }

LossSumsReducer DataParallel::loss_sums() const {
  return [&host = host_](std::vector<double>& s) { host.all_reduce_sum(s.data(), static_cast<int64_t>(s.size())); };
}

bool DataParallel::any(bool flag) {
  double x = flag ? 1 : 0;
  host_.all_reduce_sum(&x, 1);
  return x > 0;
}

double DataParallel::from_lead(double x) {
  if (host_.rank() != 0) x = 0;  // the others add nothing
  host_.all_reduce_sum(&x, 1);
  return x;
}

}  // namespace unet
