#include "engine/plan/planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include <fstream>

#include "engine/model/unet_model.h"
#include "io/data/slices.h"
#include "io/file_error.h"

namespace unet {
namespace {

std::string mm(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

bool named_ct(const std::string& name) {
  std::string n;
  for (char ch : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return n == "ct";
}

// Sizes along the net's axes, D, H, W; `first` skips D in 2D.
struct Axes {
  int first = 0;
  std::array<int64_t, 3> v{1, 1, 1};
  int64_t voxels() const { return v[0] * v[1] * v[2]; }
};

// Each level's pooling window, nnU-Net's way: an axis pools while it stays at
// least 4 voxels and its spacing (which doubles with each pooling) is no more
// than twice the finest axis's, so that thick slices wait, unpooled, for the
// in-plane axes to catch up. At most `cap` levels; at least one.
std::vector<PoolWindow> windows_for(const Axes& patch, std::array<double, 3> spacing_dhw, int cap) {
  std::array<int64_t, 3> size = patch.v;
  std::vector<PoolWindow> windows;
  while (int(windows.size()) < cap) {
    double finest = 1e300;
    for (int a = patch.first; a < 3; ++a) finest = std::min(finest, spacing_dhw[a]);
    int f[3] = {1, 1, 1};
    bool any = false;
    for (int a = patch.first; a < 3; ++a)
      if (size[a] >= 8 && spacing_dhw[a] <= 2 * finest) f[a] = 2, any = true;
    if (!any) break;
    for (int a = 0; a < 3; ++a) size[a] /= f[a], spacing_dhw[a] *= f[a];
    windows.push_back({f[0], f[1], f[2]});
  }
  if (windows.empty()) windows.push_back({patch.first == 0 ? 2 : 1, 2, 2});  // a patch under 8 voxels a side
  return windows;
}

// What an axis must divide by: the product of its windows.
std::array<int64_t, 3> divisors(const std::vector<PoolWindow>& windows) {
  std::array<int64_t, 3> m{1, 1, 1};
  for (const PoolWindow& w : windows) m[0] *= w.d, m[1] *= w.h, m[2] *= w.w;
  return m;
}

// Down to a multiple of each axis's divisor (never below it), as "same" padding needs.
Axes divisible(Axes p, const std::vector<PoolWindow>& windows) {
  const std::array<int64_t, 3> m = divisors(windows);
  for (int a = p.first; a < 3; ++a) p.v[a] = std::max(m[a], p.v[a] / m[a] * m[a]);
  return p;
}

class ConfigurationPlanner {
 public:
  ConfigurationPlanner(const Fingerprint& f, const DatasetPlan& plan, const PlanOptions& o, bool three_d)
      : f_(f), plan_(plan), o_(o), three_d_(three_d) {}

  PlannedConfiguration run() {
    PlannedConfiguration c;
    c.name = three_d_ ? "3d" : "2d";
    // 2D: the plane of a slice along the plan's axis (of the image itself for 2D data).
    Axes median{three_d_ ? 0 : 1, three_d_ ? plan_.median_shape : slicing_grid(plan_.median_shape, plan_.slice_axis)};
    if (!three_d_) median.v[0] = 1;
    // nnU-Net's start: a patch of the median shape, at most 256^3 (3D) or 2048^2
    // (2D) voxels in the median's proportions.
    const double cap_voxels = three_d_ ? 256.0 * 256 * 256 : 2048.0 * 2048;
    const double scale = std::min(1.0, std::pow(cap_voxels / double(median.voxels()), 1.0 / (three_d_ ? 3 : 2)));
    Axes patch = median;
    for (int a = patch.first; a < 3; ++a) patch.v[a] = std::max<int64_t>(4, std::llround(double(median.v[a]) * scale));
    const int depth_cap = three_d_ ? 5 : 6;
    c.model = base_model();
    if (!three_d_ && f_.dims == 3) c.reasons.push_back(plan_.slice_axis_reason);
    c.reasons.push_back("filters: " + std::to_string(c.model.start_filters) + " doubling per level, at most " +
                        std::to_string(c.model.max_filters) + " (nnU-Net's " + (three_d_ ? "3D" : "2D") + " cap)");
    // Shrink the axis furthest above its share of the median shape until a
    // batch of 2 fits the budget (nnU-Net's reduction).
    int shrinks = 0;
    const std::array<double, 3> spacing_dhw =
        slicing_grid(std::array<double, 3>{plan_.spacing[2], plan_.spacing[1], plan_.spacing[0]},
                     three_d_ ? 0 : plan_.slice_axis);
    for (;;) {
      c.model.pooling = windows_for(patch, spacing_dhw, depth_cap);
      c.model.depth = static_cast<int>(c.model.pooling.size());
      patch = divisible(patch, c.model.pooling);
      c.batch = 2;
      if (measure(c, patch) <= o_.budget_bytes) break;
      int worst = -1;
      double ratio = 0;
      for (int a = patch.first; a < 3; ++a) {
        const double r = double(patch.v[a]) / double(median.v[a]);
        if (patch.v[a] > 4 && r > ratio) ratio = r, worst = a;
      }
      if (worst < 0)
        throw std::invalid_argument("plan " + c.name + ": not even a patch of " + c.size_text() + " with batch 2 fits " +
                                    mib(o_.budget_bytes) + " (it needs " + mib(c.bytes()) +
                                    "); give a larger --memory-budget");
      patch.v[worst] -= divisors(c.model.pooling)[worst];
      patch.v[worst] = std::max<int64_t>(patch.v[worst], 4);
      ++shrinks;
    }
    c.reasons.push_back("patch " + c.size_text() + ": the median shape at the target spacing" +
                        (scale < 1 ? " scaled to the starting cap" : "") +
                        (shrinks ? ", its longest axis (relative to the median) shrunk " + std::to_string(shrinks) +
                                       " time(s) to fit the budget"
                                 : "") +
                        "; each axis a multiple of its poolings");
    c.reasons.push_back("depth " + std::to_string(c.model.depth) + ", pooling " +
                        pooling_text(c.model.pooling, c.model.dims) +
                        ": an axis pools while it stays >= 4 voxels and is at most 2x the finest spacing" +
                        " (at most " + std::to_string(depth_cap) + " levels)");
    std::string shares;
    for (float w : c.model.loss_weights()) shares += (shares.empty() ? "" : ", ") + mm(w);
    c.reasons.push_back("deep supervision: a head on each decoder level, losses weighted " + shares +
                        " from full resolution down (nnU-Net's; --no-deep-supervision turns it off)");
    // The largest batch that fits, but no more than 5% of the dataset's voxels
    // in one batch (nnU-Net's cap), and at least 2.
    double dataset_voxels = 0;
    for (const CaseFingerprint& cf : f_.cases) dataset_voxels += resampled_voxels(cf);
    const int by_data = static_cast<int>(0.05 * dataset_voxels / double(patch.voxels()));
    int batch = 2;
    for (c.batch = 3; c.batch <= std::max(2, by_data) && measure(c, patch) <= o_.budget_bytes; ++c.batch) batch = c.batch;
    c.batch = batch;
    measure(c, patch);
    c.reasons.push_back("batch " + std::to_string(batch) + ": " +
                        (batch == std::max(2, by_data) ? "the cap of 5% of the dataset's voxels per batch (at least 2)"
                                                       : "the most that fits the budget"));
    c.reasons.push_back("memory " + mib(c.bytes()) + " of " + mib(o_.budget_bytes) + ": arena " + mib(c.arena_bytes) +
                        " + parameters, gradients and Adam's moments " + mib(c.model_bytes));
    return c;
  }

 private:
  UNetConfig base_model() const {
    UNetConfig m;
    m.dims = three_d_ ? 3 : 2;
    m.start_filters = 32;
    m.max_filters = three_d_ ? 320 : 512;
    m.norm = NormChoice::instance;
    m.deep_supervision = true;
    m.activation = {Activation::leaky_relu, 0.01f};
    m.in_channels = static_cast<int>(f_.channels);
    m.classes = o_.classes;
    m.head = default_head(o_.classes);
    return m;
  }

  // A case's voxels at the target spacing (every slice of a volume, for 2D too).
  double resampled_voxels(const CaseFingerprint& cf) const {
    double v = 1;
    for (int a = f_.dims == 3 ? 0 : 1; a < 3; ++a) v *= double(cf.size[a]) * cf.spacing[2 - a] / plan_.spacing[2 - a];
    return v;
  }

  // Lays the net out for a batch of patches: the arena and the model's fp32 state.
  int64_t measure(PlannedConfiguration& c, const Axes& patch) {
    c.patch = patch.v;
    if (!model_ || model_->config().pooling != c.model.pooling) {
      model_.reset();  // one net at a time
      model_ = std::make_unique<UNet>(c.model);
      model_->to(o_.backend);
    }
    const Shape input{c.batch, c.model.in_channels, patch.v[0], patch.v[1], patch.v[2], c.model.dims};
    c.arena_bytes = model_->plan_bytes(input);
    c.model_bytes = 4 * model_->parameter_count() * int64_t(sizeof(float));
    return c.bytes();
  }

  const Fingerprint& f_;
  const DatasetPlan& plan_;
  const PlanOptions& o_;
  bool three_d_;
  std::unique_ptr<UNet> model_;
};

}  // namespace

std::string PlannedConfiguration::size_text() const {
  std::string s = std::to_string(patch[2]) + "x" + std::to_string(patch[1]);
  if (model.dims == 3) s += "x" + std::to_string(patch[0]);
  return s;
}

std::array<double, 3> target_spacing(const Fingerprint& f, std::string* reason) {
  std::array<double, 3> t{1, 1, 1};
  const int axes = f.dims == 3 ? 3 : 2;  // x, y[, z]
  std::vector<double> per_axis[3];
  for (const CaseFingerprint& c : f.cases)
    for (int a = 0; a < axes; ++a) per_axis[a].push_back(c.spacing[a]);
  for (int a = 0; a < axes; ++a) t[a] = percentile(per_axis[a], 50);
  std::string why = "the median of each axis";
  if (axes == 3) {
    const int coarse = static_cast<int>(std::max_element(t.begin(), t.end()) - t.begin());
    double others = 0;
    for (int a = 0; a < 3; ++a)
      if (a != coarse) others = std::max(others, t[a]);
    if (t[coarse] > 3 * others) {
      t[coarse] = percentile(per_axis[coarse], 10);
      why += std::string("; ") + "xyz"[coarse] + " more than 3x coarser than the others: its 10th percentile";
    }
  }
  if (reason) *reason = why;
  return t;
}

DatasetPlan plan_dataset(const Fingerprint& f, const PlanOptions& options) {
  if (f.cases.empty()) throw std::invalid_argument("plan: the fingerprint holds no case");
  PlanOptions o = options;
  if (!o.backend) o.backend = cpu_backend();
  DatasetPlan p;
  p.budget_bytes = o.budget_bytes;
  p.spacing = target_spacing(f, &p.spacing_reason);
  for (int a = 0; a < 3; ++a) {  // D, H, W <- spacing z, y, x
    std::vector<double> sizes;
    for (const CaseFingerprint& c : f.cases) sizes.push_back(double(c.size[a]) * c.spacing[2 - a] / p.spacing[2 - a]);
    p.median_shape[a] = f.dims == 2 && a == 0 ? 1 : std::max<int64_t>(1, std::llround(percentile(sizes, 50)));
  }
  for (int64_t ch = 0; ch < f.channels; ++ch) {
    const std::string name = ch < int64_t(f.channel_names.size()) ? f.channel_names[ch] : "";
    ChannelNorm n;
    if (o.ct || named_ct(name)) {
      const ForegroundIntensity& fg = f.foreground[ch];
      n = {NormScheme::ct, fg.p00_5, fg.p99_5, fg.mean, fg.std};
      p.normalization_reasons.push_back("channel " + std::to_string(ch) + (o.ct ? " (--ct)" : " named " + name) +
                                        ": ct, clipped to the foreground's [" + mm(fg.p00_5) + ", " + mm(fg.p99_5) +
                                        "], then (x - " + mm(fg.mean) + ") / " + mm(fg.std));
    } else {
      p.normalization_reasons.push_back("channel " + std::to_string(ch) + (name.empty() ? "" : " (" + name + ")") +
                                        ": zscore, each image its own mean and deviation (not CT)");
    }
    p.normalization.channels.push_back(n);
  }
  if (f.dims == 3) {
    // Slices along the coarsest axis (nnU-Net's 2D), z where none is coarser.
    const std::array<double, 3> dhw{p.spacing[2], p.spacing[1], p.spacing[0]};
    for (int a = 1; a < 3; ++a)
      if (dhw[a] > dhw[p.slice_axis] * 1.001) p.slice_axis = a;
    p.slice_axis_reason = std::string("2d slices along ") + slice_axis_name(p.slice_axis) +
                          (p.slice_axis == 0 && dhw[0] <= std::max(dhw[1], dhw[2]) * 1.001
                               ? ": no axis is coarser than z"
                               : ": the coarsest axis") +
                          "; resampled in their plane only";
    p.configurations.push_back(ConfigurationPlanner(f, p, o, true).run());
  }
  p.configurations.push_back(ConfigurationPlanner(f, p, o, false).run());
  return p;
}

nlohmann::json to_json(const DatasetPlan& p) {
  nlohmann::json configs = nlohmann::json::object();
  for (const PlannedConfiguration& c : p.configurations)
    configs[c.name] = {{"dims", c.model.dims},
                       {"size", c.size_text()},
                       {"patch_dhw", c.patch},
                       {"batch_size", c.batch},
                       {"depth", c.model.depth},
                       {"pooling", pooling_text(c.model.pooling, c.model.dims)},
                       {"start_filters", c.model.start_filters},
                       {"max_filters", c.model.max_filters},
                       {"classes", c.model.classes},
                       {"norm", choice_name(kNormChoices, c.model.norm)},
                       {"deep_supervision", c.model.deep_supervision},
                       {"activation", choice_name(kActivations, c.model.activation.kind)},
                       {"arena_bytes", c.arena_bytes},
                       {"model_bytes", c.model_bytes},
                       {"reasons", c.reasons}};
  if (!p.slice_axis_reason.empty()) configs["2d"]["slice_axis"] = slice_axis_name(p.slice_axis);
  return {{"spacing_xyz", p.spacing},
          {"spacing_reason", p.spacing_reason},
          {"median_shape_dhw", p.median_shape},
          {"normalization", to_json(p.normalization)},
          {"normalization_reasons", p.normalization_reasons},
          {"budget_bytes", p.budget_bytes},
          {"configurations", configs}};
}

PlanChoice read_plan(const std::string& path, const std::string& configuration) {
  std::ifstream in(path);
  if (!in) throw FileError(path + ": cannot open the plan; write one with `unet plan --data D -o " + path + "`");
  PlanChoice choice;
  std::string field = "the JSON";
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    field = "plan";
    const nlohmann::json& plan = j.at("plan");
    field = "fingerprint.dims";
    choice.data_dims = j.at("fingerprint").at("dims");
    const nlohmann::json& configs = plan.at("configurations");
    const std::string name = !configuration.empty() ? configuration : configs.contains("3d") ? "3d" : "2d";
    if (!configs.contains(name))
      throw FileError(path + ": plans no configuration \"" + name + "\" (it plans " +
                      (configs.contains("3d") ? "3d and 2d" : "2d") + ")");
    field = "plan.configurations." + name;
    const nlohmann::json& c = configs.at(name);
    PlannedConfiguration& pc = choice.configuration;
    pc.name = name;
    pc.model.dims = c.at("dims");
    pc.patch = c.at("patch_dhw").get<std::array<int64_t, 3>>();
    pc.batch = c.at("batch_size");
    pc.model.depth = c.at("depth");
    field = "plan.configurations." + name + ".pooling";
    pc.model.pooling = parse_pooling(c.at("pooling").get<std::string>(), pc.model.dims);
    field = "plan.configurations." + name;
    pc.model.start_filters = c.at("start_filters");
    pc.model.max_filters = c.at("max_filters");
    pc.model.classes = c.at("classes");
    pc.model.norm = choose(kNormChoices, c.at("norm").get<std::string>(), "norm");
    pc.model.deep_supervision = c.at("deep_supervision");
    pc.model.activation.kind = choose(kActivations, c.at("activation").get<std::string>(), "activation");
    pc.arena_bytes = c.at("arena_bytes");
    pc.model_bytes = c.at("model_bytes");
    if (name == "2d" && choice.data_dims == 3) {
      field = "plan.configurations.2d.slice_axis";
      choice.slice_axis = parse_slice_axis(c.at("slice_axis").get<std::string>());
    }
    field = "plan.normalization";
    choice.normalization = normalization_from_json(plan.at("normalization"));
    field = "plan.spacing_xyz";
    choice.spacing = plan.at("spacing_xyz").get<std::array<double, 3>>();
  } catch (const FileError&) {
    throw;
  } catch (const std::exception& e) {
    throw FileError(path + ": " + field + " is missing or wrong (" + e.what() + "); write the plan again with `unet plan`");
  }
  return choice;
}

}  // namespace unet
