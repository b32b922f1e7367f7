#include "lib/state/tree_state.hpp"

#include <sys/stat.h>

#include <map>

#include "lib/state/json_fields.hpp"

namespace wpckpt::state {

using json = nlohmann::json;

template <typename V>
void fields(V& v, TreeMember& m) {
  v.req("pid", m.pid), v.opt("ppid", m.ppid), v.opt("pgid", m.pgid), v.opt("sid", m.sid), v.opt("comm", m.comm);
  v.opt("zombie", m.zombie), v.opt("wait_status", m.wait_status);
}
template <typename V>
void fields(V& v, TreeState& t) {
  v.opt("tree_version", t.tree_version), v.req("root", t.root), v.req("processes", t.processes);
}

Result<TreeState> parse_tree(std::span<const std::byte> bytes) {
  json doc = json::parse(reinterpret_cast<const char*>(bytes.data()),
                         reinterpret_cast<const char*>(bytes.data()) + bytes.size(), nullptr, false);
  if (doc.is_discarded()) return make_error(EINVAL, "parse process tree", std::string(kTreeFile) + " is not valid JSON");
  TreeState t;
  if (auto it = doc.find("tree_version"); doc.is_object() && it != doc.end())
    WPCKPT_TRY(read_json(*it, t.tree_version, "tree_version"));
  if (t.tree_version == 0 || t.tree_version > kTreeVersion)
    return make_error(0, "read process tree", "tree_version " + std::to_string(t.tree_version))
        .with_hint("this image was written by a newer wpckpt; restore it with that version");
  WPCKPT_TRY(read_json(doc, t, ""));
  WPCKPT_TRY(validate_tree(t));
  return t;
}

Result<std::string> serialize_tree(const TreeState& tree) {
  try {
    return write_json(tree).dump(1);
  } catch (const json::exception& e) {
    return make_error(EILSEQ, "describe process tree", e.what())
        .with_hint("a process name is not valid UTF-8, which tree.json cannot hold yet");
  }
}

bool is_tree_image(const std::filesystem::path& dir) {
  struct stat st {};
  return ::lstat((dir / kTreeFile).c_str(), &st) == 0;
}

Result<void> validate_tree(const TreeState& t) {
  auto bad = [](const std::string& what) {
    return make_error(EINVAL, "read process tree", what).with_hint("the image is damaged or was not written by wpckpt");
  };
  if (t.processes.empty() || t.processes.front().pid != t.root) return bad("the root must be the first process");
  std::map<int, const TreeMember*> seen;
  for (const TreeMember& m : t.processes) {
    if (m.pid <= 0) return bad("pid " + std::to_string(m.pid));
    if (seen.count(m.pid)) return bad("pid " + std::to_string(m.pid) + " twice");
    if (m.pid == t.root) {
      if (m.zombie) return bad("the root is a zombie");
      if (seen.count(m.ppid)) return bad("the root's parent is in the tree");
    } else {
      auto parent = seen.find(m.ppid);
      if (parent == seen.end() || parent->second->zombie)
        return bad("process " + std::to_string(m.pid) + " comes before its parent " + std::to_string(m.ppid));
    }
    seen.emplace(m.pid, &m);
  }
  const TreeMember& root = t.processes.front();
  for (const TreeMember& m : t.processes) {
    // Made by fork from a member, a process can only be in a member's
    // session and group, or in those the root had (the restorer's).
    if (m.sid != root.sid && m.sid != m.pid && !seen.count(m.sid))
      return bad("process " + std::to_string(m.pid) + " is in session " + std::to_string(m.sid) + ", outside the tree");
    if (m.pgid != root.pgid && m.pgid != m.pid && !seen.count(m.pgid))
      return bad("process " + std::to_string(m.pid) + " is in group " + std::to_string(m.pgid) + ", outside the tree");
  }
  return ok();
}

}  // namespace wpckpt::state
