// unet predict: segments images with a trained model. For each input (files, or
// every image file in a folder) it writes, into --output:
//   NAME_mask.png / .tif / .nii.gz   classes (PNG: 0/255 for two classes, the
//                             class index otherwise; TIFF: uint8, a page per slice;
//                             NIfTI: uint8 keeping the input's header);
//                             --keep-largest: each class's largest component only
//   NAME_prob.png / .tif / .nii.gz   with --probabilities: the foreground probability
//                             (PNG, 16-bit 0..65535) or every class's (TIFF, NIfTI float32)
//   NAME_components.png       2D: connected components, one colour each
//                             (TIFF, numbered uint16; NIfTI: NAME_components.nii.gz, numbered)
// The model, its normalization and its patch size come from the weights file.
// A model trained at a spacing (its weights say which) sees each input
// resampled to it; its logits come back to the input's grid (linear, as
// nnU-Net v2 does), so the masks match the input voxel for voxel and carry its
// header, whatever its spacing or size. A 2D model predicts a volume slice by
// slice, along the axis it was trained on (its weights say which).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/storage/checkpoint.h"
#include "engine/model/sliding_window.h"
#include "engine/evaluate/components.h"
#include "io/image_file.h"
#include "io/nifti.h"
#include "io/data/normalize.h"
#include "io/data/resample.h"
#include "io/data/slices.h"
#include "io/png.h"
#include "io/tiff.h"
#include "tools/cli/commands.h"
#include "tools/cli/device_options.h"
#include "tools/cli/model_options.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

struct PredictCli {
  std::string weights, output = "predictions", size;
  std::vector<std::string> inputs;
  WindowSpec window;
  int batch = 1;
  bool probabilities = false, keep_largest = false;
  DeviceOptions device;
};

bool is_png(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".png";
}

std::vector<std::string> expand(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (!fs::is_directory(in)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(in))
      if (e.is_regular_file() && is_image_file(e.path().string()) && e.path().extension() != ".img")
        found.push_back(e.path().string());
    if (found.empty()) throw FileError(in + ": no image files (.png, .tif, .nii, .nii.gz, .hdr) in this folder");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// A volume on the input's grid and header, with c channels of these values.
Volume like(const Volume& input, int64_t c, std::vector<float> values) {
  Volume v = input;
  v.c = c;
  v.voxels = std::move(values);
  return v;
}

// How a model sees an input: at its spacing (0: the input's own), a 2D model
// on volumes along its slicing axis, normalized, by sliding window.
struct Viewing {
  Spacing spacing{0, 0, 0};
  int slice_axis = 0;
  NormalizationStats norm;
  WindowSpec window;
};

// The model's logits for an input, on the input's own grid.
std::vector<float> input_logits(UNet& model, const Volume& input, const Viewing& v) {
  const int64_t K = model.config().out_channels();
  const bool resample = v.spacing != Spacing{0, 0, 0} && !same_spacing(input.spacing, v.spacing, input.dims);
  Volume image = resample ? resample_image(input, v.spacing) : input;
  if (!v.norm.channels.empty()) normalize(image, v.norm);
  std::vector<float> logits;
  if (model.config().dims == 2 && image.dims == 3) {  // slices: their axis first, each predicted, the axes put back
    const std::vector<float> x = slicing_axis_first(image.voxels, image.c, image.grid(), v.slice_axis);
    logits = slicing_axis_back(predict_logits(model, x.data(), slicing_grid(image.grid(), v.slice_axis), v.window),
                               K, image.grid(), v.slice_axis);
  } else {
    logits = predict_logits(model, image.voxels.data(), image.grid(), v.window);
  }
  if (!resample) return logits;
  std::printf("%s: predicted at the model's spacing %g x %g x %g (%lldx%lldx%lld), brought back to %lldx%lldx%lld\n",
              input.path.c_str(), v.spacing[0], v.spacing[1], v.spacing[2], (long long)image.w, (long long)image.h,
              (long long)image.d, (long long)input.w, (long long)input.h, (long long)input.d);
  return resample_linear(logits, K, image.grid(), input.grid());
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto o = std::make_shared<PredictCli>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment images with a trained model (sliding window)");
  cmd->add_option("inputs", o->inputs, "Image files or folders of them")->required();
  cmd->add_option("--weights,-w", o->weights, "A weights file from unet train (best.safetensors)")->required();
  cmd->add_option("--output,-o", o->output, "Folder for the results")->capture_default_str();
  cmd->add_option("--size", o->size, "Tile size W x H[ x D] (default: the training patch)");
  cmd->add_option("--batch-size,-b", o->batch, "Tiles per forward pass")->capture_default_str();
  cmd->add_option("--overlap", o->window.overlap, "Fraction of a tile shared with its neighbour")->capture_default_str();
  cmd->add_flag("--mirror", o->window.mirror, "Average over every flip of the axes (test-time augmentation)");
  cmd->add_flag("--probabilities", o->probabilities, "Also write probability maps");
  cmd->add_flag("--keep-largest", o->keep_largest,
                "Keep only the largest connected component of each class in the mask (nnU-Net's post-processing)");
  add_device_options(*cmd, o->device);
  cmd->callback([o] {
    const Safetensors file = read_safetensors(o->weights);
    const std::unique_ptr<UNet> model = open_model(file, o->weights);
    const UNetConfig& config = model->config();
    Viewing view;  // what the weights say: normalization, spacing, slicing axis
    view.window = o->window;
    if (auto it = file.metadata.find("unet.normalization"); it != file.metadata.end())
      view.norm = normalization_from_json(nlohmann::json::parse(it->second));
    if (auto it = file.metadata.find("unet.spacing"); it != file.metadata.end())
      view.spacing = nlohmann::json::parse(it->second).get<Spacing>();
    if (auto it = file.metadata.find("unet.slice_axis"); it != file.metadata.end())
      view.slice_axis = parse_slice_axis(it->second);
    const std::vector<int64_t> tile = model_input_size(o->size, file.metadata, o->weights, config.dims);
    model->to(o->device.backend());
    model->plan(batch_shape(o->batch, config.in_channels, tile));
    fs::create_directories(o->output);
    const int64_t K = config.out_channels();
    for (const std::string& path : expand(o->inputs)) {
      Volume image = read_image(path);
      check_finite(image);
      const bool slices = config.dims == 2 && image.dims == 3;  // a 2D model predicts a volume slice by slice
      if (image.c != config.in_channels || (image.dims != config.dims && !slices))
        throw FileError(path + ": " + std::to_string(image.c) + " channel(s), " + std::to_string(image.dims) +
                        "D; the model takes " + std::to_string(config.in_channels) + " channel(s), " +
                        std::to_string(config.dims) + "D");
      const std::vector<float> logits = input_logits(*model, image, view);
      const int64_t S = image.spatial();
      std::vector<float> mask(S), prob(static_cast<size_t>(K * S));
      std::vector<int32_t> classes(S);
      predict_classes(logits.data(), config.head, config.classes, S, classes.data(), prob.data());
      for (int64_t i = 0; i < S; ++i) mask[i] = static_cast<float>(classes[i]);
      if (o->keep_largest) {
        keep_largest_component(classes.data(), image.grid(), config.classes);
        for (int64_t i = 0; i < S; ++i) mask[i] = static_cast<float>(classes[i]);
      }
      const std::string base = (fs::path(o->output) / image_stem(path)).string();
      int32_t objects = 0;
      const std::vector<int32_t> components = connected_components(classes.data(), image.grid(), &objects);
      if (is_png(path)) {
        if (config.classes == 2)
          for (float& m : mask) m *= 255;
        write_png(base + "_mask.png", like(image, 1, mask));
        if (o->probabilities) {
          std::vector<float> p(prob.begin() + (K == 1 ? 0 : S), prob.begin() + (K == 1 ? S : 2 * S));
          for (float& x : p) x *= 65535;
          write_png(base + "_prob.png", like(image, 1, p), 16);
        }
        write_png(base + "_components.png", components_rgb(components, image.h, image.w));
      } else if (is_tiff_name(path)) {  // a TIFF input gets TIFF outputs, a page per slice
        write_tiff(base + "_mask.tif", like(image, 1, mask), "uint8");
        if (o->probabilities) write_tiff(base + "_prob.tif", like(image, K, prob), "float32");
        std::vector<float> numbered(components.begin(), components.end());
        write_tiff(base + "_components.tif", like(image, 1, numbered), objects <= 65535 ? "uint16" : "float32");
      } else {
        write_nifti(base + "_mask.nii.gz", like(image, 1, mask), "uint8");
        if (o->probabilities) write_nifti(base + "_prob.nii.gz", like(image, K, prob), "float32");
        std::vector<float> numbered(components.begin(), components.end());
        write_nifti(base + "_components.nii.gz", like(image, 1, numbered), "int32");
      }
      std::printf("%s -> %s_mask%s (%d object(s))\n", path.c_str(), base.c_str(),
                  is_png(path) ? ".png" : is_tiff_name(path) ? ".tif" : ".nii.gz", objects);
    }
  });
}

}  // namespace unet
