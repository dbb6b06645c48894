#include "engine/train/train_step.h"

#include <cstddef>
#include <string>

#include "engine/device/ops.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

// What the step keeps in the backend's memory: uploaded whole before each
// step (the outputs start at their defaults), the outputs read back after it.
struct StepScalars {
  StepInputs in;
  StepOutputs out;
};

}  // namespace

TrainStep::TrainStep(UNet& model, StepSettings settings) : model_(model), s_(std::move(settings)) {
  Backend& be = model_.backend();
  const int64_t bytes = model_.parameter_count() * int64_t(sizeof(float));
  m_ = be.allocate(bytes);
  v_ = be.allocate(bytes);
  scalars_ = be.allocate(sizeof(StepScalars));
  if (s_.ranges.empty()) s_.ranges.push_back({0, model_.parameter_count()});
  if (s_.accumulate < 1) throw std::invalid_argument("gradient accumulation must be at least 1 batch");
}

StepOutputs* TrainStep::out() {
  return reinterpret_cast<StepOutputs*>(static_cast<char*>(scalars_.get()) + offsetof(StepScalars, out));
}

bool TrainStep::whole() const {
  return s_.accumulate == 1 && !s_.reducer && !s_.reduce_sums && model_.capturable(true);
}

std::optional<StagedBatch> TrainStep::take(const NextBatch& next) {
  if (!ahead_) return next();
  std::optional<StagedBatch> batch = ahead_;
  ahead_.reset();
  return batch;
}

void TrainStep::pass(const StagedBatch& batch, int64_t step, bool last) {
  const Tensor logits = model_.forward(batch.input, true, static_cast<uint64_t>(step));
  ops::step_loss(model_.backend(), logits, batch.labels, model_.dlogits(), with_weight(s_.loss, model_.head_weight()),
                 s_.reduce_sums, in(), out());
  // Deep supervision: each upper decoder level's loss, on its labels, with its share.
  for (const UNet::DeepOutput& d : model_.deep_outputs(batch.labels))
    ops::step_loss(model_.backend(), d.logits, d.labels, d.dlogits, with_weight(s_.loss, d.weight), s_.reduce_sums, in(),
                   out());
  if (s_.reducer && last) s_.reducer->begin();  // the last batch's backward completes the sums
  model_.backward(batch.input);
}

void TrainStep::update() {
  if (s_.reducer) s_.reducer->finish();
  ops::step_update(model_.backend(), model_.device_params(), model_.device_grads(), m(), v(), model_.parameter_count(),
                               s_.ranges, s_.optimizer, in(), out());
}

std::optional<StepResult> TrainStep::run(int64_t step, float lr, float loss_scale, const NextBatch& next,
                                         bool prefetch) {
  Backend& be = model_.backend();
  StepScalars host;
  host.in.lr = lr;
  host.in.bias1 = adam_bias(s_.optimizer.beta1, step + 1);
  host.in.bias2 = adam_bias(s_.optimizer.beta2, step + 1);
  host.in.loss_scale = loss_scale;
  host.in.clip_norm = s_.clip_norm;
  host.in.accumulate = s_.accumulate;
  be.upload(scalars_.get(), &host, sizeof host);
  if (whole()) {
    const std::optional<StagedBatch> batch = take(next);
    if (!batch) return std::nullopt;
    // One graph per staging buffer the batch came in.
    graphs_[{batch->input.data, batch->input.batch_stride, batch->labels}].run(be, [&] {
      model_.zero_grads();
      pass(*batch, step, true);
      update();
    });
  } else {
    model_.zero_grads();
    for (int a = 0; a < s_.accumulate; ++a) {
      const std::optional<StagedBatch> batch = a == 0 ? take(next) : next();
      if (!batch) {
        be.synchronize();  // the batches staged so far may go back
        return std::nullopt;
      }
      pass(*batch, step, a + 1 == s_.accumulate);
    }
    update();
  }
  if (prefetch) ahead_ = next();
  be.download(&host.out, out(), sizeof host.out);
  if (host.out.first_bad != kNoBadLabel)
    throw std::invalid_argument(bad_label_message(host.out.bad_label, static_cast<int64_t>(host.out.first_bad),
                                                  head_classes(s_.loss.head, model_.output_shape()),
                                                  s_.loss.ignore_label));
  return StepResult{host.out.loss, step_norm(host.out.sumsq, host.in), host.out.factor != 0.f};
}

}  // namespace unet
