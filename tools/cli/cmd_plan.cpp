// unet plan: a dataset's fingerprint and the configurations planned from it,
// printed with the reason for each choice and written as JSON.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "engine/plan/planner.h"
#include "io/atomic_file.h"
#include "io/data/dataset.h"
#include "io/data/fingerprint.h"
#include "tools/cli/commands.h"
#include "tools/cli/device_options.h"
#include "tools/cli/label_options.h"
#include "tools/cli/planning.h"

namespace unet {
namespace {

struct PlanCli {
  PlanRequest request;
  std::string output = "plan.json";
  DeviceOptions device;
};

int64_t machine_bytes() { return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)); }

void print_fingerprint(const Fingerprint& f) {
  std::printf("fingerprint: %zu cases, %dD, %lld channel(s)\n", f.cases.size(), f.dims,
              static_cast<long long>(f.channels));
  std::printf("  %-16s %-16s %-22s %-6s %s\n", "case", "size (WxHxD)", "spacing (x, y, z)", "axes", "voxels per class");
  for (const CaseFingerprint& c : f.cases) {
    char size[32], spacing[48];
    std::snprintf(size, sizeof size, "%lldx%lldx%lld", static_cast<long long>(c.size[2]),
                  static_cast<long long>(c.size[1]), static_cast<long long>(c.size[0]));
    std::snprintf(spacing, sizeof spacing, "%.3g, %.3g, %.3g", c.spacing[0], c.spacing[1], c.spacing[2]);
    std::string voxels;
    for (int64_t v : c.class_voxels) voxels += (voxels.empty() ? "" : " ") + std::to_string(v);
    std::printf("  %-16s %-16s %-22s %-6s %s\n", c.id.c_str(), size, spacing, c.orientation.c_str(), voxels.c_str());
  }
  for (size_t ch = 0; ch < f.foreground.size(); ++ch) {
    const ForegroundIntensity& i = f.foreground[ch];
    std::printf("  channel %zu foreground: mean %.4g, std %.4g, 0.5%% %.4g, 99.5%% %.4g\n", ch, i.mean, i.std, i.p00_5,
                i.p99_5);
  }
}

void print_plan(const DatasetPlan& p) {
  std::printf("\nplan (budget %.2f GiB):\n", double(p.budget_bytes) / double(1 << 30));
  std::printf("  spacing %.3g, %.3g, %.3g (x, y, z): %s\n", p.spacing[0], p.spacing[1], p.spacing[2],
              p.spacing_reason.c_str());
  std::printf("  median shape at that spacing %lldx%lldx%lld (WxHxD)\n", static_cast<long long>(p.median_shape[2]),
              static_cast<long long>(p.median_shape[1]), static_cast<long long>(p.median_shape[0]));
  for (const std::string& r : p.normalization_reasons) std::printf("  normalization, %s\n", r.c_str());
  for (const PlannedConfiguration& c : p.configurations) {
    std::printf("\n  %s: --dims %d --size %s --batch-size %d --depth %d --pooling %s --start-filters %d "
                "--max-filters %d --norm %s --activation %s --classes %d%s\n",
                c.name.c_str(), c.model.dims, c.size_text().c_str(), c.batch, c.model.depth,
                pooling_text(c.model.pooling, c.model.dims).c_str(), c.model.start_filters,
                c.model.max_filters, choice_name(kNormChoices, c.model.norm),
                choice_name(kActivations, c.model.activation.kind), c.model.classes,
                c.model.deep_supervision ? " --deep-supervision" : "");
    for (const std::string& r : c.reasons) std::printf("    %s\n", r.c_str());
  }
}

}  // namespace

void plan_and_write(const PlanRequest& r, const std::string& output) {
  const Dataset ds = open_dataset(r.data);
  const LabelSpec labels = resolve_labels(
      r.labels, r.classes ? r.classes : ds.classes.size() >= 2 ? static_cast<int>(ds.classes.size()) : 2);
  const int workers = r.workers > 0 ? r.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const Fingerprint f = fingerprint_dataset(ds, labels, workers);
  print_fingerprint(f);
  PlanOptions po;
  po.backend = r.backend ? r.backend : cpu_backend();
  po.budget_bytes = r.memory_budget_gib > 0   ? int64_t(r.memory_budget_gib * double(1 << 30))
                    : po.backend->is_cuda() ? po.backend->free_bytes()
                                            : machine_bytes();
  po.ct = r.ct;
  po.classes = labels.classes;
  const DatasetPlan p = plan_dataset(f, po);
  print_plan(p);
  write_file_atomic(output, nlohmann::json{{"fingerprint", to_json(f)}, {"plan", to_json(p)}}.dump(2) + "\n");
  std::printf("\nwrote %s\n", output.c_str());
}

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanCli>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Fingerprint a dataset and plan spacing, normalization, patch, batch, depth and filters (nnU-Net's way)");
  PlanRequest& r = o->request;
  cmd->add_option("--data", r.data, "Dataset: a folder with image/ and label/, a CSV manifest, or an nnU-Net folder")
      ->required();
  cmd->add_option("-o,--output", o->output, "Where to write the fingerprint and the plan (JSON)")->capture_default_str();
  cmd->add_option("--memory-budget", r.memory_budget_gib,
                  "GiB one training process may use (default: the GPU's free memory with --gpus 1, else the machine's)");
  cmd->add_option("--classes", r.classes, "Classes including background (default: the dataset's, else 2)");
  add_label_options(*cmd, r.labels);
  cmd->add_flag("--ct", r.ct, "Treat every channel as CT (otherwise only channels named CT)");
  cmd->add_option("--workers", r.workers, "Cases read at once (default: the cores)");
  add_device_options(*cmd, o->device);
  cmd->callback([o] {
    o->request.backend = o->device.backend();
    plan_and_write(o->request, o->output);
  });
}

}  // namespace unet
