#include "engine/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace unet {
namespace {

void validate(const ScheduleSpec& s) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("learning-rate schedule: " + what); };
  if (!(s.base_lr > 0)) fail("learning rate " + std::to_string(s.base_lr) + " must be positive");
  if (s.total_steps < 1) fail("total steps " + std::to_string(s.total_steps) + " must be at least 1");
  if (s.warmup_steps < 0 || s.warmup_steps >= s.total_steps)
    fail("warm-up of " + std::to_string(s.warmup_steps) + " steps must be in [0, total steps " +
         std::to_string(s.total_steps) + ")");
  if (s.kind == ScheduleKind::step && (s.step_size < 1 || !(s.step_gamma > 0)))
    fail("step schedule needs step size >= 1 and gamma > 0");
  if (s.kind == ScheduleKind::poly && !(s.poly_power > 0)) fail("poly power must be positive");
  if (s.kind == ScheduleKind::cosine && (s.min_lr < 0 || s.min_lr > s.base_lr))
    fail("cosine minimum rate must be in [0, base rate]");
}

}  // namespace

double learning_rate(const ScheduleSpec& s, int64_t step) {
  validate(s);
  if (step < 0) throw std::invalid_argument("learning rate: negative step " + std::to_string(step));
  if (step < s.warmup_steps) return s.base_lr * double(step + 1) / double(s.warmup_steps);
  const double T = double(s.total_steps - s.warmup_steps);
  const double t = std::min(double(step - s.warmup_steps), T);
  switch (s.kind) {
    case ScheduleKind::constant: return s.base_lr;
    case ScheduleKind::step: return s.base_lr * std::pow(s.step_gamma, std::floor(t / double(s.step_size)));
    case ScheduleKind::poly: return s.base_lr * std::pow(1.0 - t / T, s.poly_power);
    case ScheduleKind::cosine: return s.min_lr + (s.base_lr - s.min_lr) * (1.0 + std::cos(M_PI * t / T)) / 2.0;
  }
  return s.base_lr;
}

}  // namespace unet
