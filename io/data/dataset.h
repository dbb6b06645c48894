// Datasets on disk -> lists of cases, splits, and cases loaded as Samples.
//
// Three layouts:
//  folders    root/image/NAME + root/label/NAME, the same file name on both
//             sides (ISBI 2012: train/image/0.png + train/label/0.png).
//  csv        a manifest with a header row; one column names the image, another
//             the label (the lung tutorial's `path,pathmsk`, the defaults);
//             relative paths resolve against the CSV's folder.
//  decathlon  nnU-Net v2 / Medical Segmentation Decathlon: root/dataset.json,
//             root/imagesTr/CASE_XXXX.nii.gz per channel XXXX, root/labelsTr/
//             CASE.nii.gz. dataset.json names the channels ("channel_names",
//             or MSD's "modality") and the classes ("labels": name -> value as
//             nnU-Net v2, or value -> name as MSD). When it lists "training"
//             pairs (MSD's own files, 4D images) those are used instead.
// Every problem (an image without a label, a label without an image, an empty
// dataset, a missing column or file, a bad dataset.json) is a FileError naming
// the file and what to do. Cases are sorted by id, numbers compared as numbers
// (ISBI's 2 before 10), so that splits do not depend on directory order.
//
// Splits are by case, deterministic: explicit ids, a fraction with a seed, or
// fold i of k (shuffled once with the seed, then cut into k contiguous folds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/data/labels.h"
#include "io/data/normalize.h"
#include "io/data/patch.h"
#include "io/volume.h"

namespace unet {

struct Case {
  std::string id;
  std::vector<std::string> images;  // one file per channel (a file may hold several)
  std::string label;                // empty: unlabelled
};

struct Dataset {
  std::string source;                 // the folder or CSV it came from
  std::string layout;                 // "folders", "csv" or "decathlon"
  std::vector<std::string> channels;  // names, where the layout gives them
  std::vector<std::string> classes;   // names by class value, where the layout gives them
  std::vector<Case> cases;
};

struct DatasetOptions {
  std::string image_dir = "image", label_dir = "label";       // folders
  std::string image_column = "path", label_column = "pathmsk";  // csv
  bool require_labels = true;  // false: cases without a label are kept (prediction)
};

Dataset open_folders(const std::string& root, const DatasetOptions& opt = {});
Dataset open_csv(const std::string& csv, const DatasetOptions& opt = {});
Dataset open_decathlon(const std::string& root, const DatasetOptions& opt = {});
// By what is there: a .csv file, a folder with dataset.json, or one with image/.
Dataset open_dataset(const std::string& path, const DatasetOptions& opt = {});

struct Split {
  std::vector<Case> train, val;
};
// val = the cases named (all must exist); train = train_ids, or every other case when empty.
Split split_by_ids(const Dataset& ds, const std::vector<std::string>& val_ids,
                   const std::vector<std::string>& train_ids = {});
// round(fraction * cases) validation cases (at least 1 when fraction > 0), chosen by seed.
Split split_fraction(const Dataset& ds, double val_fraction, uint64_t seed);
// Fold `fold` (0-based) of k is the validation set.
Split split_kfold(const Dataset& ds, int fold, int k, uint64_t seed);

// Reads every channel file and stacks them; all on one grid, all finite.
Volume read_case_image(const Case& c);

struct CaseData {
  Volume image;                // channels stacked, not yet normalized
  std::vector<int32_t> label;  // classes, empty when unlabelled
};
// The image, and the label converted by `spec` after checking it lies on the image's grid.
CaseData load_case(const Case& c, const LabelSpec& spec);

// Normalizes and hands the voxels over as a Sample for patching and augmentation.
Sample to_sample(CaseData&& data, const NormalizationStats& norm);

// Writes a sample for inspection: 2D as PREFIX_image.png + PREFIX_label.png
// (the first channel min-max scaled to 0..255; classes spread over 0..255),
// 3D as PREFIX_image.nii.gz + PREFIX_label.nii.gz (float32 image, channels in
// the 4th dimension, int16 classes).
void save_sample(const Sample& s, const std::string& prefix);

}  // namespace unet
