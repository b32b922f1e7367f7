#include "tracker/proc_maps.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "lib/base/text_file.hpp"

namespace wpckpt::tracker {
namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool Vma::has_flag(const char* flag) const {
  for (const std::string& f : vm_flags)
    if (f == flag) return true;
  return false;
}

std::string Vma::prot_string() const {
  std::string s = "----";
  if (read) s[0] = 'r';
  if (write) s[1] = 'w';
  if (exec) s[2] = 'x';
  s[3] = shared ? 's' : 'p';
  return s;
}

namespace {

// The front of `s` as a number in `base`, taken off it.
template <typename T>
bool take_number(std::string_view& s, int base, T& v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(end - s.data()));
  return true;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

// Calls fn on each line of `text` (without its newline).
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    fn(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
}

}  // namespace

// By hand rather than sscanf: a freeze reads maps once, and at 32,000
// areas sscanf and a string stream took 4 ms of it.
bool parse_maps_line(std::string_view line, Vma& out) {
  // start-end perms offset major:minor inode   name
  if (line.empty() || !is_hex(line[0])) return false;
  uint64_t start = 0, end = 0, offset = 0, inode = 0;
  uint32_t major = 0, minor = 0;
  std::string_view s = line;
  if (!take_number(s, 16, start) || !take_char(s, '-') || !take_number(s, 16, end) || !take_char(s, ' ')) return false;
  if (s.size() < 5 || s[4] != ' ' || s.substr(0, 4).find(' ') != std::string_view::npos) return false;
  std::string_view perms = s.substr(0, 4);
  s.remove_prefix(5);
  if (!take_number(s, 16, offset) || !take_char(s, ' ') || !take_number(s, 16, major) || !take_char(s, ':') ||
      !take_number(s, 16, minor) || !take_char(s, ' ') || !take_number(s, 10, inode))
    return false;
  if (start >= end) return false;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);  // the name's padding
  out = Vma{};
  out.start = start;
  out.end = end;
  out.read = perms[0] == 'r';
  out.write = perms[1] == 'w';
  out.exec = perms[2] == 'x';
  out.shared = perms[3] == 's';
  out.offset = offset;
  out.dev_major = major;
  out.dev_minor = minor;
  out.inode = inode;
  out.name.assign(s);
  return true;
}

Result<std::vector<Vma>> read_maps(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/maps";
  WPCKPT_TRY_ASSIGN(std::string text, read_text_file(path));
  std::vector<Vma> vmas;
  vmas.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')));
  std::optional<Error> bad;
  for_each_line(text, [&](std::string_view line) {
    Vma v;
    if (bad) return;
    if (!parse_maps_line(line, v)) bad = make_error(EINVAL, "parse", path + ": " + std::string(line));
    else vmas.push_back(std::move(v));
  });
  if (bad) return std::move(*bad);
  return vmas;
}

Result<std::vector<Vma>> read_smaps(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/smaps";
  WPCKPT_TRY_ASSIGN(std::string text, read_text_file(path));
  std::vector<Vma> vmas;
  for_each_line(text, [&](std::string_view line) {
    Vma v;
    if (parse_maps_line(line, v)) {
      vmas.push_back(std::move(v));
    } else if (line.starts_with("VmFlags:") && !vmas.empty()) {
      line.remove_prefix(8);
      while (!line.empty()) {
        size_t space = line.find(' ');
        if (space != 0) vmas.back().vm_flags.emplace_back(line.substr(0, space));
        line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
      }
    }
  });
  return vmas;
}

Result<const std::vector<Vma>*> given_or_read_maps(pid_t pid, const std::vector<Vma>* given, std::vector<Vma>& storage) {
  if (given) return given;
  WPCKPT_TRY_ASSIGN(storage, read_maps(pid));
  return &storage;
}

Result<std::vector<Vma>> read_maps_reusing_flags(pid_t pid, const std::vector<Vma>& earlier) {
  WPCKPT_TRY_ASSIGN(std::vector<Vma> now, read_maps(pid));
  auto same = [](const Vma& a, const Vma& b) {
    return a.start == b.start && a.end == b.end && a.read == b.read && a.write == b.write && a.exec == b.exec &&
           a.shared == b.shared && a.offset == b.offset && a.dev_major == b.dev_major && a.dev_minor == b.dev_minor &&
           a.inode == b.inode && a.name == b.name;
  };
  size_t j = 0;  // both lists are in address order
  for (Vma& v : now) {
    while (j < earlier.size() && earlier[j].end <= v.start) ++j;
    if (j == earlier.size() || !same(v, earlier[j])) return read_smaps(pid);
    v.vm_flags = earlier[j].vm_flags;
  }
  return now;
}

}  // namespace wpckpt::tracker
