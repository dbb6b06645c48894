// unet visualize: an image with label (green) and prediction (red) contours as a
// PNG; for a volume, its three orthogonal mid-planes side by side (axial,
// coronal, sagittal), each at its true aspect ratio from the voxel spacing, the
// slice axis pointing up.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "io/image_file.h"
#include "io/png.h"
#include "engine/evaluate/render.h"
#include "tools/cli/commands.h"

namespace unet {
namespace {

// Classes for contours: above the threshold when one is given, else the rounded value.
std::vector<int32_t> classes_of(const Volume& v, double threshold) {
  std::vector<int32_t> out(static_cast<size_t>(v.spatial()));
  for (int64_t i = 0; i < v.spatial(); ++i)
    out[i] = std::isnan(threshold) ? static_cast<int32_t>(std::lround(v.voxels[i])) : v.voxels[i] > threshold;
  return out;
}

struct Plane {
  std::vector<float> image;
  std::vector<int32_t> label, prediction;
  int64_t h = 0, w = 0;
  double dy = 1, dx = 1;  // spacing of rows and columns
};

// axis 0: the z mid-plane (rows y, columns x); 1: the y mid-plane (rows z, flipped,
// columns x); 2: the x mid-plane (rows z, flipped, columns y).
Plane mid_plane(const Volume& img, const std::vector<int32_t>* label, const std::vector<int32_t>* pred, int axis) {
  Plane p;
  const int64_t D = img.d, H = img.h, W = img.w;
  const double sx = img.spacing[0], sy = img.spacing[1], sz = img.spacing[2];
  p.h = axis == 0 ? H : D;
  p.w = axis == 2 ? H : W;
  p.dy = axis == 0 ? sy : sz;
  p.dx = axis == 2 ? sy : sx;
  for (int64_t r = 0; r < p.h; ++r)
    for (int64_t c = 0; c < p.w; ++c) {
      const int64_t z = axis == 0 ? D / 2 : D - 1 - r, y = axis == 0 ? r : axis == 1 ? H / 2 : c,
                    x = axis == 2 ? W / 2 : c;
      const int64_t i = (z * H + y) * W + x;
      p.image.push_back(img.voxels[i]);
      if (label) p.label.push_back((*label)[i]);
      if (pred) p.prediction.push_back((*pred)[i]);
    }
  return p;
}

}  // namespace

void add_visualize_command(CLI::App& app) {
  struct Options {
    std::string image, label, prediction, output = "overlay.png";
    double threshold = std::nan("");
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("visualize", "Draw label and prediction contours over an image (PNG)");
  cmd->add_option("image", o->image, "The image (PNG or NIfTI)")->required();
  cmd->add_option("--label,-l", o->label, "Reference label: green contours");
  cmd->add_option("--prediction,-p", o->prediction, "Predicted mask: red contours (yellow where they agree)");
  cmd->add_option("--label-threshold", o->threshold, "Binarize the label above this value (interpolated masks)");
  cmd->add_option("--output,-o", o->output, "The PNG to write")->capture_default_str();
  cmd->callback([o] {
    const Volume img = read_image(o->image);
    std::vector<int32_t> label, pred;
    for (auto [path, out, threshold] : {std::tuple{&o->label, &label, o->threshold},
                                        std::tuple{&o->prediction, &pred, std::nan("")}}) {
      if (path->empty()) continue;
      const Volume v = read_image(*path);
      if (!v.same_grid(img))
        throw FileError(*path + " is not on the grid of " + o->image + " (" + std::to_string(v.w) + "x" +
                        std::to_string(v.h) + "x" + std::to_string(v.d) + " against " + std::to_string(img.w) + "x" +
                        std::to_string(img.h) + "x" + std::to_string(img.d) + ")");
      *out = classes_of(v, threshold);
    }
    const std::vector<int32_t>* lp = label.empty() ? nullptr : &label;
    const std::vector<int32_t>* pp = pred.empty() ? nullptr : &pred;
    if (img.d == 1) {
      write_png(o->output, overlay_rgb(img.voxels.data(), img.h, img.w, lp ? lp->data() : nullptr,
                                       pp ? pp->data() : nullptr));
    } else {
      const double unit = std::min({img.spacing[0], img.spacing[1], img.spacing[2]});
      std::vector<Volume> panels;
      for (int axis = 0; axis < 3; ++axis) {
        const Plane p = mid_plane(img, lp, pp, axis);
        const Volume rgb = overlay_rgb(p.image.data(), p.h, p.w, lp ? p.label.data() : nullptr,
                                       pp ? p.prediction.data() : nullptr);
        panels.push_back(resize_rgb(rgb, std::lround(p.h * p.dy / unit), std::lround(p.w * p.dx / unit)));
      }
      const int64_t gap = 4;
      int64_t h = 0, w = 0;
      for (const Volume& p : panels) h = std::max(h, p.h), w += p.w + gap;
      Volume out = resize_rgb(panels[0], h, w - gap);  // any content: every pixel is set below
      std::fill(out.voxels.begin(), out.voxels.end(), 0.f);
      int64_t x0 = 0;
      for (const Volume& p : panels) {
        for (int k = 0; k < 3; ++k)
          for (int64_t y = 0; y < p.h; ++y)
            for (int64_t x = 0; x < p.w; ++x) out.voxels[(k * h + y) * out.w + x0 + x] = p.voxels[(k * p.h + y) * p.w + x];
        x0 += p.w + gap;
      }
      write_png(o->output, out);
    }
    std::printf("%s\n", o->output.c_str());
  });
}

}  // namespace unet
