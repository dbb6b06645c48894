// unet info FILE...: what the readers see in each file, or why they cannot read it.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "io/image_file.h"
#include "tools/cli/commands.h"

namespace unet {

void add_info_command(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("info", "Print what the readers see in image files (NIfTI, PNG)");
  cmd->add_option("files", *files, "Image files")->required();
  cmd->callback([files] {
    int failed = 0;
    for (const std::string& f : *files) {
      try {
        std::printf("%s\n", describe(read_image(f)).c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "unet info: %s\n", e.what());
        ++failed;
      }
    }
    if (failed) throw ExitStatus{1};
  });
}

}  // namespace unet
