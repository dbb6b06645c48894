// A command-line option over a choice table (kernels/base/choice.h): its values
// are checked against the table's names, and its help lists each with its line.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "kernels/base/choice.h"

namespace unet {

// extra: names the option takes beyond the table's ("auto"), explained in
// `what`; left_out: the table's names it does not take.
template <class T, size_t N>
CLI::Option* add_choice(CLI::App& cmd, const std::string& flags, std::string& value, const Choice<T> (&table)[N],
                        const std::string& what, const std::vector<std::string>& extra = {},
                        const std::vector<std::string>& left_out = {}) {
  std::vector<std::string> names = extra;
  std::string help = what + ".";
  for (const Choice<T>& c : table) {
    if (std::find(left_out.begin(), left_out.end(), c.name) != left_out.end()) continue;
    names.push_back(c.name);
    help += std::string(" ") + c.name + ": " + c.help + ";";
  }
  help.back() = '.';
  return cmd.add_option(flags, value, help)->check(CLI::IsMember(names))->capture_default_str();
}

}  // namespace unet
