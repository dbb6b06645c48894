// Learning-rate schedules: constant, step, poly, cosine; each with an optional
// linear warm-up. learning_rate(spec, step) gives the rate for step `step`
// (0-based). During warm-up (step < warmup_steps) the rate rises linearly,
// base_lr * (step + 1) / warmup_steps; after it the schedule runs over
// t = step - warmup_steps of T = total_steps - warmup_steps:
//   constant: base_lr
//   step:     base_lr * step_gamma ^ floor(t / step_size)
//   poly:     base_lr * (1 - t / T) ^ poly_power            (nnU-Net: 0.9)
//   cosine:   min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2
// t is clamped to T, so steps past the end keep the last rate.
#pragma once

#include <cstdint>

#include "kernels/base/choice.h"

namespace unet {

enum class ScheduleKind { constant, step, poly, cosine };
inline constexpr Choice<ScheduleKind> kSchedules[] = {
    {"constant", ScheduleKind::constant, "the base rate throughout"},
    {"step", ScheduleKind::step, "multiplied by step_gamma every step_size steps"},
    {"poly", ScheduleKind::poly, "polynomial decay to 0 (nnU-Net's)"},
    {"cosine", ScheduleKind::cosine, "cosine decay to 0"}};

struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::constant;
  double base_lr = 1e-3;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;
  int64_t step_size = 1000;  // step
  double step_gamma = 0.1;   // step
  double poly_power = 0.9;   // poly
  double min_lr = 0.0;       // cosine
};

double learning_rate(const ScheduleSpec& spec, int64_t step);

}  // namespace unet
