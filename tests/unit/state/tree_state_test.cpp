// tree.json (lib/state/tree_state.hpp): the rules restore relies on, each
// broken once, and a round trip.
#include <gtest/gtest.h>

#include <string>

#include "lib/state/tree_state.hpp"

namespace wpckpt::state {
namespace {

TreeState pipeline() {
  TreeState t;
  t.root = 200;
  t.processes = {{200, 100, 100, 90, "sh", false, 0},
                 {201, 200, 100, 90, "sort", false, 0},
                 {202, 200, 202, 90, "make", false, 0},       // leads its group
                 {203, 202, 202, 90, "cc1", false, 0},        // in a member's group
                 {204, 202, 204, 204, "daemon", false, 0},    // its own session
                 {205, 200, 100, 90, "seq", true, 7 << 8}};   // a zombie
  return t;
}

Result<TreeState> round_trip(const TreeState& t) {
  auto text = serialize_tree(t);
  if (!text) return std::move(text).error();
  return parse_tree(std::as_bytes(std::span(text->data(), text->size())));
}

TEST(TreeState, AValidTreeRoundTrips) {
  auto back = round_trip(pipeline());
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->processes.size(), 6u);
  EXPECT_EQ(back->root, 200);
  EXPECT_TRUE(back->processes[5].zombie);
  EXPECT_EQ(back->processes[5].wait_status, 7 << 8);
  EXPECT_EQ(back->processes[4].sid, 204);
}

TEST(TreeState, EachBrokenRuleIsRefusedNamingIt) {
  struct Case {
    const char* what;
    void (*breaks)(TreeState&);
    const char* named;
  } cases[] = {
      {"root not first", [](TreeState& t) { std::swap(t.processes[0], t.processes[1]); }, "root"},
      {"duplicate pid", [](TreeState& t) { t.processes[3].pid = 201; }, "twice"},
      {"non-positive pid", [](TreeState& t) { t.processes[1].pid = 0; }, "pid 0"},
      {"child before parent", [](TreeState& t) { std::swap(t.processes[2], t.processes[3]); }, "before its parent"},
      {"parent a zombie", [](TreeState& t) { t.processes[3].ppid = 205; std::swap(t.processes[3], t.processes[5]); },
       "before its parent"},
      {"root a zombie", [](TreeState& t) { t.processes[0].zombie = true; }, "zombie"},
      {"session outside", [](TreeState& t) { t.processes[1].sid = 77; }, "session 77"},
      {"group outside", [](TreeState& t) { t.processes[1].pgid = 78; }, "group 78"},
  };
  for (const Case& c : cases) {
    TreeState t = pipeline();
    c.breaks(t);
    auto v = validate_tree(t);
    ASSERT_FALSE(v.ok()) << c.what;
    EXPECT_NE(v.error().context.find(c.named), std::string::npos) << c.what << ": " << v.error().context;
    EXPECT_FALSE(round_trip(t).ok()) << c.what << ": parse_tree validates too";
  }
}

TEST(TreeState, NewerVersionAndGarbageAreRefused) {
  std::string newer = R"({"tree_version": 2, "root": 1, "processes": [{"pid": 1}]})";
  auto n = parse_tree(std::as_bytes(std::span(newer.data(), newer.size())));
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().hint.find("newer"), std::string::npos);
  std::string junk = "{\"root\": ";
  EXPECT_FALSE(parse_tree(std::as_bytes(std::span(junk.data(), junk.size()))).ok());
  std::string wrong_type = R"({"root": "1", "processes": []})";
  EXPECT_FALSE(parse_tree(std::as_bytes(std::span(wrong_type.data(), wrong_type.size()))).ok());
}

}  // namespace
}  // namespace wpckpt::state
