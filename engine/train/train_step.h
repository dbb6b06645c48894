// One optimizer step of a planned model, as the trainer runs it and `unet
// bench` times it: the gradients zeroed; for each batch forward, loss and
// backward; then the gradient norm, clipping and the optimizer over the
// trainable parameters. The step's scalars (learning rate, bias corrections,
// loss scale) go to the backend's memory before it and its results (loss,
// gradient norm, whether it was taken) come back after it, one copy each way
// (kernels/step.h): nothing in between waits for the host, and where nothing
// in it calls the host either (one batch per step, no data-parallel hooks, no
// dropout) the whole step is one CUDA Graph.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "engine/parallel/gradient_reducer.h"
#include "engine/model/unet_model.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"

namespace unet {

struct StepSettings {
  LossSpec loss;  // its grad_scale is left out: run() gives the step's loss scale
  OptimizerSpec optimizer;
  double clip_norm = 0;  // the global gradient norm's bound; <= 0: no clipping
  int accumulate = 1;   // batches per step, their gradients summed
  ParamRanges ranges;   // the trained parameters; empty: all of them
  // Data parallel: the gradients' all-reduce, and the loss sums' over ranks.
  GradientReducer* reducer = nullptr;
  LossSumsReducer reduce_sums;
};

// A batch in the backend's memory (UNet::stage_input, stage_labels).
struct StagedBatch {
  Tensor input;
  const int32_t* labels = nullptr;
};

struct StepResult {
  double loss = 0;       // the mean of the batches' losses
  double grad_norm = 0;  // of the mean gradient, unscaled, before clipping
  bool taken = false;    // false: the loss or the gradient was not finite; parameters and moments kept
};

class TrainStep {
 public:
  // Allocates the optimizer's moments (zero) and the step's scalars in the
  // model's backend; the model is planned (plan()) before run().
  TrainStep(UNet& model, StepSettings settings);
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // The optimizer's moments (SGD's momentum in m), in the backend's memory.
  float* m() { return static_cast<float*>(m_.get()); }
  float* v() { return static_cast<float*>(v_.get()); }
  // Whether run() is one captured graph on a backend that captures.
  bool whole() const;

  // The step after `step` steps (Adam's bias correction and dropout's masks
  // follow it) over settings.accumulate batches from next(), called once per
  // batch as the step goes. prefetch: once the step is queued, next() also
  // gives the next step's first batch, whose copy then runs beside this step
  // (the caller stages nothing else before the next run(): validation would
  // overwrite it). nullopt when next() ran out first: the step was
  // left, the parameters and moments kept. Throws std::invalid_argument for a
  // label outside the classes (bad_label_message), the parameters and moments
  // kept. Batch norm's running statistics follow the forward passes that ran,
  // as in PyTorch.
  using NextBatch = std::function<std::optional<StagedBatch>()>;
  std::optional<StepResult> run(int64_t step, float lr, float loss_scale, const NextBatch& next,
                                bool prefetch = false);

 private:
  StepInputs* in() { return reinterpret_cast<StepInputs*>(scalars_.get()); }
  StepOutputs* out();
  std::optional<StagedBatch> take(const NextBatch& next);  // the batch fetched ahead, else next()'s
  void pass(const StagedBatch& batch, int64_t step, bool last);
  void update();

  UNet& model_;
  StepSettings s_;
  CudaGraphs graphs_;  // the whole step, per staging buffer (whole())
  Backend::Memory m_, v_, scalars_;  // scalars_: StepInputs, then StepOutputs
  std::optional<StagedBatch> ahead_;  // staged by the last run(prefetch)
};

}  // namespace unet
