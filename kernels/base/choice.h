// One table per choice: each value an option can take, with its name (as the
// command line, the configuration files and the messages spell it) and a line
// of help. The command line's validation, mapping and help, and the files'
// reading and writing, are built from the one table beside the enum.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace unet {

template <class T>
struct Choice {
  const char* name;
  T value;
  const char* help;
};

// "a, b or c".
template <class T, size_t N>
std::string choice_names(const Choice<T> (&table)[N]) {
  std::string out;
  for (size_t i = 0; i < N; ++i) out += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(table[i].name);
  return out;
}

template <class T, size_t N>
std::optional<T> find_choice(const Choice<T> (&table)[N], const std::string& name) {
  for (const Choice<T>& c : table)
    if (name == c.name) return c.value;
  return std::nullopt;
}

// The value named `name`; throws std::invalid_argument "<what> <name>: expected a, b or c".
template <class T, size_t N>
T choose(const Choice<T> (&table)[N], const std::string& name, const std::string& what) {
  if (const std::optional<T> v = find_choice(table, name)) return *v;
  throw std::invalid_argument(what + " " + name + ": expected " + choice_names(table));
}

template <class T, size_t N>
const char* choice_name(const Choice<T> (&table)[N], T value) {
  for (const Choice<T>& c : table)
    if (c.value == value) return c.name;
  throw std::logic_error("a value missing from its choice table");
}

}  // namespace unet
