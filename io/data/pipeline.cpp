#include "io/data/pipeline.h"

#include <algorithm>
#include <cstdio>

#include "io/data/slices.h"
#include "io/data/synthetic.h"

namespace unet {
namespace {

struct Loaded {
  std::vector<std::string> ids;
  std::vector<CaseData> cases;
};

// The synthetic default: 24 images (2D) or 8 volumes (3D), the last sixth held out.
void synthetic_cases(const DataOptions& opt, Loaded& train, Loaded& val) {
  SyntheticSpec spec;
  spec.dims = opt.synthetic_dims;
  spec.size = opt.synthetic_size;
  spec.cells = opt.synthetic_dims == 2 ? 30 : 40;
  spec.seed = opt.seed;
  const int count = opt.synthetic_dims == 2 ? 24 : 8, held_out = opt.synthetic_dims == 2 ? 4 : 2;
  LabelSpec labels;  // membrane 255 -> class 1
  labels.binarize = true;
  for (int i = 0; i < count; ++i) {
    auto [image, label] = synthetic_em(spec, i);
    image.path = label.path = "synthetic/" + std::to_string(i);
    CaseData c{std::move(image), to_classes(label, labels)};
    Loaded& to = i < count - held_out ? train : val;
    to.ids.push_back("synthetic_" + std::to_string(i));
    to.cases.push_back(std::move(c));
  }
}

// The case at `target` spacing (0 along an axis: that axis as it is); whether it changed.
bool resample_case(CaseData& c, const Spacing& target) {
  if (target == Spacing{0, 0, 0} || same_spacing(c.image.spacing, target, c.image.dims)) return false;
  const std::array<int64_t, 3> from = c.image.grid();
  c.image = resample_image(c.image, target);
  if (!c.label.empty()) c.label = resample_labels(c.label, from, c.image.grid());
  return true;
}

// A case as the net sees it: as it is, or for a 2D net on volumes (slice_axis
// >= 0) with that axis first, cut into its slices for training.
void add_sample(Sample s, int slice_axis, bool validation, std::vector<Sample>& to) {
  if (slice_axis >= 0) s = slicing_axis_first(s, slice_axis);
  if (slice_axis < 0 || validation) {
    to.push_back(std::move(s));
    return;
  }
  for (Sample& slice : slices_of(s)) to.push_back(std::move(slice));
}

void load_split(const DataOptions& opt, Loaded& train, Loaded& val) {
  const Dataset ds = open_dataset(opt.path);
  Split split = !opt.val_cases.empty() ? split_by_ids(ds, opt.val_cases)
                : opt.fold >= 0        ? split_kfold(ds, opt.fold, opt.folds, opt.seed)
                                       : split_fraction(ds, opt.val_fraction, opt.seed);
  std::printf("dataset %s (%s layout): %zu cases, %zu for training, %zu for validation\n", ds.source.c_str(),
              ds.layout.c_str(), ds.cases.size(), split.train.size(), split.val.size());
  int resampled = 0;
  for (auto [cases, to] : {std::pair{&split.train, &train}, std::pair{&split.val, &val}})
    for (const Case& c : *cases) {
      to->ids.push_back(c.id);
      to->cases.push_back(load_case(c, opt.labels));
      resampled += resample_case(to->cases.back(), opt.spacing);
      if (!opt.verbose) continue;
      const CaseData& d = to->cases.back();
      int64_t foreground = 0;
      for (int32_t v : d.label) foreground += v > 0;
      std::printf("  %s %s: %lld x %lld x %lld, %lld channel(s), spacing %g x %g x %g, foreground %.1f%%\n",
                  to == &train ? "train" : "val", c.id.c_str(), (long long)d.image.w, (long long)d.image.h,
                  (long long)d.image.d, (long long)d.image.c, d.image.spacing[0], d.image.spacing[1],
                  d.image.spacing[2], 100.0 * double(foreground) / double(std::max<size_t>(d.label.size(), 1)));
    }
  if (opt.spacing != Spacing{0, 0, 0}) {
    std::string text;
    for (double v : opt.spacing) {
      char b[32] = "as is";
      if (v > 0) std::snprintf(b, sizeof b, "%g", v);
      text += (text.empty() ? "" : " x ") + std::string(b);
    }
    std::printf("spacing %s: %d of %zu cases resampled to it (images linear, labels per-class linear)\n",
                text.c_str(), resampled, split.train.size() + split.val.size());
  }
}

}  // namespace

std::shared_ptr<PreparedData> prepare_data(const DataOptions& opt) {
  Loaded train, val;
  if (opt.path.empty())
    synthetic_cases(opt, train, val);
  else
    load_split(opt, train, val);
  if (train.cases.empty()) throw std::invalid_argument("no training cases: the split left every case for validation");
  auto out = std::make_shared<PreparedData>();
  const Volume& first = train.cases.front().image;
  out->channels = first.c;
  out->dims = first.dims;
  out->spacing = opt.spacing;
  std::vector<ChannelNorm> norm = opt.norm.empty() ? std::vector<ChannelNorm>{ChannelNorm{}} : opt.norm;
  norm.resize(static_cast<size_t>(first.c), norm.back());
  NormalizationBuilder builder(norm);
  for (const CaseData& c : train.cases) {
    if (c.image.c != first.c || c.image.dims != first.dims)
      throw FileError(c.image.path + ": " + std::to_string(c.image.c) + " channel(s), " +
                      std::to_string(c.image.dims) + "D; the first training case " + first.path + " has " +
                      std::to_string(first.c) + ", " + std::to_string(first.dims) + "D");
    builder.add(c.image, c.label.data());
  }
  out->normalization = builder.finish();
  if (opt.net_dims == 2 && first.dims == 3) out->slice_axis = opt.slice_axis, out->dims = 2;
  for (auto [from, to, ids] : {std::tuple{&train, &out->train, &out->train_ids}, std::tuple{&val, &out->val, &out->val_ids}}) {
    *ids = from->ids;
    for (CaseData& c : from->cases)
      add_sample(to_sample(std::move(c), out->normalization), out->slice_axis, to == &out->val, *to);
  }
  if (out->slice_axis >= 0)
    std::printf("a 2D net on volumes: %zu training slices along %s; the %zu validation volumes predicted slice by "
                "slice\n", out->train.size(), slice_axis_name(out->slice_axis), out->val.size());
  for (const Sample& s : out->train) out->foreground.push_back(index_foreground(s));
  return out;
}

MakeSample make_sampler(std::shared_ptr<const PreparedData> data, const PatchSpec& patch,
                                const AugmentSpec& augment, uint64_t seed, Shape sample_shape) {
  return [data, patch, augment, seed, sample_shape](int64_t epoch, int64_t sample, float* image, int32_t* label) {
    const int64_t cases = static_cast<int64_t>(data->train.size());
    const SampleRef ref = sample_ref(sample, cases, augment);
    std::mt19937_64 placement = sample_rng(seed, epoch, sample, 0);
    Sample s = extract_patch(data->train[ref.case_index], patch, placement, &data->foreground[ref.case_index]);
    if (ref.augment) {
      std::mt19937_64 rng = sample_rng(seed, epoch, sample, 1);
      unet::augment(s, augment, rng);
    }
    write_to(s, sample_shape, image, label);
  };
}

}  // namespace unet
