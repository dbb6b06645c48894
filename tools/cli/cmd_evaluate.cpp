// unet evaluate: scores predicted masks against reference labels, per case and
// per class: Dice, IoU, precision, recall, Hausdorff distance and HD95 in the
// reference's physical units (its header's spacing). Predictions are matched to
// labels by name (NAME_mask.png or NAME.png against NAME.png, any image format);
// reference labels go through the same conversion as in training
// (--label-threshold, --label-map). Writes a CSV and prints one summary line per
// class (means over the cases where the class is present in either mask).
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "io/image_file.h"
#include "io/data/labels.h"
#include "engine/evaluate/surface_distance.h"
#include "tools/cli/commands.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

std::string case_id(const fs::path& p) {
  std::string name = image_stem(p.string());
  const std::string suffix = "_mask";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    name.resize(name.size() - suffix.size());
  return name;
}

std::map<std::string, std::string> images_by_id(const std::string& dir, const char* what) {
  if (!fs::is_directory(dir)) throw FileError(dir + ": no such folder (" + what + ")");
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string path = e.path().string();
    if (!e.is_regular_file() || !is_image_file(path) || e.path().extension() == ".img") continue;
    const std::string name = e.path().filename().string();
    if (name.find("_prob.") != std::string::npos || name.find("_components.") != std::string::npos) continue;
    out[case_id(e.path())] = path;
  }
  if (out.empty()) throw FileError(dir + ": no image files (" + what + ")");
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

void add_evaluate_command(CLI::App& app) {
  struct Options {
    std::string predictions, labels, csv = "evaluation.csv", label_map;
    double threshold = std::nan("");
    int classes = 2;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("evaluate", "Score predicted masks against labels (Dice, IoU, HD95, ...)");
  cmd->add_option("--predictions,-p", o->predictions, "Folder of predicted masks (unet predict's output)")->required();
  cmd->add_option("--labels,-l", o->labels, "Folder of reference label files")->required();
  cmd->add_option("--classes", o->classes, "Classes, background included")->capture_default_str();
  cmd->add_option("--label-threshold", o->threshold, "Binarize the reference labels above this value");
  cmd->add_option("--label-map", o->label_map, "Reference value -> class, e.g. 0:1,255:0");
  cmd->add_option("--csv", o->csv, "Where to write the per-case table")->capture_default_str();
  cmd->callback([o] {
    const auto preds = images_by_id(o->predictions, "predictions"), refs = images_by_id(o->labels, "labels");
    LabelSpec ref_spec;
    ref_spec.classes = o->classes;
    if (!std::isnan(o->threshold)) ref_spec.binarize = true, ref_spec.threshold = o->threshold;
    if (!o->label_map.empty()) ref_spec.map = parse_label_map(o->label_map);
    LabelSpec pred_spec;  // our masks: 0/255 (PNG) or 0/1 (NIfTI) for two classes, class indices otherwise
    pred_spec.classes = o->classes;
    if (o->classes == 2) pred_spec.binarize = true, pred_spec.threshold = 0.5;
    std::string table = "case,class,dice,iou,precision,recall,hausdorff,hd95\n";
    std::vector<std::vector<SegmentationScores>> per_class(o->classes);
    for (const auto& [id, pred_path] : preds) {
      const auto ref = refs.find(id);
      if (ref == refs.end()) throw FileError(pred_path + ": no label named " + id + " in " + o->labels);
      const Volume pv = read_image(pred_path), rv = read_image(ref->second);
      if (!pv.same_grid(rv))
        throw FileError(pred_path + " is " + std::to_string(pv.w) + "x" + std::to_string(pv.h) + "x" +
                        std::to_string(pv.d) + ", its label " + ref->second + " is " + std::to_string(rv.w) + "x" +
                        std::to_string(rv.h) + "x" + std::to_string(rv.d));
      const std::vector<int32_t> p = to_classes(pv, pred_spec), r = to_classes(rv, ref_spec);
      for (int k = 1; k < o->classes; ++k) {
        std::vector<uint8_t> pm(p.size()), rm(r.size());
        for (size_t i = 0; i < p.size(); ++i) pm[i] = p[i] == k, rm[i] = r[i] == k;
        const SegmentationScores s =
            score_masks(pm, rm, rv.grid(), {rv.dims == 3 ? rv.spacing[2] : 1.0, rv.spacing[1], rv.spacing[0]});
        per_class[k].push_back(s);
        table += id + "," + std::to_string(k) + "," + number(s.dice) + "," + number(s.iou) + "," +
                 number(s.precision) + "," + number(s.recall) + "," + number(s.hausdorff) + "," + number(s.hd95) + "\n";
      }
    }
    std::ofstream(o->csv) << table;
    for (int k = 1; k < o->classes; ++k) {
      double sums[6] = {0, 0, 0, 0, 0, 0};
      int n = 0, infinite = 0;
      for (const SegmentationScores& s : per_class[k]) {
        if (std::isnan(s.dice)) continue;
        ++n;
        const double v[6] = {s.dice, s.iou, s.precision, s.recall, s.hausdorff, s.hd95};
        if (std::isinf(s.hausdorff)) ++infinite;
        for (int j = 0; j < 6; ++j)
          if (std::isfinite(v[j])) sums[j] += v[j];
      }
      const int finite = n - infinite;
      std::printf("class %d over %d case(s): Dice %.4f IoU %.4f precision %.4f recall %.4f HD %.3f HD95 %.3f%s\n", k,
                  n, n ? sums[0] / n : NAN, n ? sums[1] / n : NAN, n ? sums[2] / n : NAN, n ? sums[3] / n : NAN,
                  finite ? sums[4] / finite : NAN, finite ? sums[5] / finite : NAN,
                  infinite ? (" (" + std::to_string(infinite) + " case(s) with one mask empty: distances infinite)").c_str()
                           : "");
    }
    std::printf("per case: %s\n", o->csv.c_str());
  });
}

}  // namespace unet
