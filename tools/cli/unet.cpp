// unet: one binary, one subcommand per job. Each subcommand lives in its own
// cmd_<name>.cpp and registers its options on the shared CLI11 app.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "engine/device/blas_core.h"
#include "tools/cli/commands.h"

int main(int argc, char** argv) {
  unet::use_best_blas_core(argv);  // before any work: OpenBLAS's kernels are chosen when it loads
  // Line by line even into a file or a pipe: Slurm logs show progress as it happens,
  // and in the order it happened relative to stderr.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"unet: train, predict, evaluate and inspect U-Nets (unet.cu)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(UNET_VERSION));
  // Options from a file, by subcommand section ([train] ...); given after the
  // subcommand too (fallthrough), as in `unet train --config run/config.ini`.
  app.set_config("--config", "", "Read options from a file: key = value lines under [train] (a run's config.ini)");
  app.fallthrough();
  unet::add_info_command(app);
  unet::add_summary_command(app);
  unet::add_plan_command(app);
  unet::add_train_command(app, argc, argv);
  unet::add_predict_command(app);
  unet::add_evaluate_command(app);
  unet::add_visualize_command(app);
  unet::add_export_command(app);
  unet::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const unet::ExitStatus& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unet: %s\n", e.what());
    return 1;
  }
  return 0;
}
