// The subcommands of `unet`: each adds itself to the app; its callback does the work
// and throws std::exception with a one-line reason on failure (main prints it and
// exits with status 1), or ExitStatus when it has already said what went wrong.
#pragma once

#include <CLI/CLI.hpp>

namespace unet {

struct ExitStatus {
  int code;
};

void add_info_command(CLI::App& app);
void add_summary_command(CLI::App& app);
void add_plan_command(CLI::App& app);
// train records the exact command line in its run folder.
void add_train_command(CLI::App& app, int argc, char** argv);
void add_predict_command(CLI::App& app);
void add_evaluate_command(CLI::App& app);
void add_visualize_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace unet
