#include "lib/dump/tree_members.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/parse_number.hpp"
#include "lib/base/text_file.hpp"
#include "lib/dump/unsupported_state.hpp"

namespace wpckpt::dump {
namespace {

// /proc/PID/stat: "(comm)" then the fields from the state on (proc(5)).
Result<state::TreeMember> read_member(pid_t pid, bool& zombie) {
  const std::string path = fmt::format("/proc/{}/stat", pid);
  auto read = read_text_file(path);
  if (!read) return make_error(ESRCH, "read", path);
  const std::string& text = *read;
  size_t open = text.find('('), close = text.rfind(')');
  if (text.empty() || open == std::string::npos || close == std::string::npos || close + 2 >= text.size())
    return make_error(ESRCH, "read", path);
  state::TreeMember m;
  m.pid = pid;
  m.comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string w; rest >> w;) f.push_back(w);
  if (f.size() < 50) return make_error(EINVAL, "parse", path);
  WPCKPT_TRY_ASSIGN(m.ppid, parse_number<int>(f[1], 10, path));
  WPCKPT_TRY_ASSIGN(m.pgid, parse_number<int>(f[2], 10, path));
  WPCKPT_TRY_ASSIGN(m.sid, parse_number<int>(f[3], 10, path));
  zombie = f[0] == "Z";
  if (zombie) {
    m.zombie = true;
    WPCKPT_TRY_ASSIGN(m.wait_status, parse_number<int>(f[49], 10, path));  // field 52: exit_code
  }
  return m;
}

}  // namespace

Result<state::TreeState> read_tree(pid_t root) {
  state::TreeState tree;
  tree.root = root;
  std::deque<pid_t> todo{root};
  while (!todo.empty()) {
    pid_t pid = todo.front();
    todo.pop_front();
    bool zombie = false;
    auto m = read_member(pid, zombie);
    if (!m) {
      if (pid == root) return std::move(m).error();
      continue;  // exited and reaped meanwhile
    }
    tree.processes.push_back(std::move(*m));
    if (zombie) continue;
    auto children = children_of(pid);
    if (!children) {
      if (pid == root) return std::move(children).error();
      continue;
    }
    todo.insert(todo.end(), children->begin(), children->end());
  }
  return tree;
}

bool same_tree(const state::TreeState& a, const state::TreeState& b) {
  if (a.root != b.root || a.processes.size() != b.processes.size()) return false;
  for (size_t i = 0; i < a.processes.size(); ++i) {
    const auto &x = a.processes[i], &y = b.processes[i];
    if (x.pid != y.pid || x.ppid != y.ppid || x.pgid != y.pgid || x.sid != y.sid || x.zombie != y.zombie) return false;
  }
  return true;
}

bool member_gone(pid_t pid) {
  // A step failed on it: an exiting process fails steps (ESRCH, or stranger:
  // a descriptor table being torn down) before /proc says Z. Look a while.
  for (int i = 0; i < 100; ++i) {
    bool zombie = false;
    auto m = read_member(pid, zombie);
    if (!m || zombie) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void drop_subtree(state::TreeState& tree, pid_t pid) {
  std::vector<int> gone = {pid};
  // Parents come before their children: one pass finds every descendant.
  for (const auto& m : tree.processes)
    if (std::find(gone.begin(), gone.end(), m.ppid) != gone.end()) gone.push_back(m.pid);
  std::erase_if(tree.processes,
                [&](const state::TreeMember& m) { return std::find(gone.begin(), gone.end(), m.pid) != gone.end(); });
}

Result<void> refuse_unrestorable_tree(const state::TreeState& tree, std::string_view verb) {
  auto valid = state::validate_tree(tree);
  if (valid) return ok();
  return make_error(EOPNOTSUPP, std::string(verb), "process tree of " + std::to_string(tree.root) + ": " +
                                                       valid.error().context)
      .with_hint("a restore re-creates every process by fork from the root, so a session or process group must be "
                 "the root's or one led by a process of the tree: dump the process that leads it (-t its pid). "
                 "Nothing was stopped");
}

}  // namespace wpckpt::dump
