// Every switch of WPCKPT_DISABLE_FEATURES changes what the verbs do (issue
// #9 C): for each feature `wpckpt check` lists, run, pre-dump, dump, restore,
// show and verify are run with it switched off. A verb that needs it refuses
// before touching the target, with exit code 1 and the words `check` prints
// for it; every other verb works (with its fallback, where there is one).
// The expectations are this test's own table: a new feature must be added
// here, or it is expected to change nothing a verb can be seen to need.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lib/probe/features.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

using Verbs = std::set<std::string>;
const Verbs kCheckpoints = {"pre-dump", "dump"};

// Which verbs refuse without the feature.
const std::map<std::string, Verbs>& refusals() {
  static const std::map<std::string, Verbs> table = {
      {"uffd_wp_async", {"run", "pre-dump", "dump"}},
      {"pagemap_scan", kCheckpoints},
      {"pagemap_scan_wp_matching", kCheckpoints},
      {"pagemap_scan_category_wpallowed", kCheckpoints},
      {"pagemap_scan_category_written", kCheckpoints},
      {"pagemap_scan_category_present", kCheckpoints},
      {"pagemap_scan_category_swapped", kCheckpoints},
      {"pidfd_open", kCheckpoints},
      {"pidfd_getfd", kCheckpoints},
      {"ptrace_seize", {"dump", "restore"}},
      {"ptrace_rseq_configuration", {"dump", "restore"}},
      {"clone3_set_tid", {"restore"}},
      {"pr_set_mm_map", {"restore"}},
      {"cap_checkpoint_restore", {"restore"}},
      {"bpf_fault_events", {"watch"}},
      // timer_create_restore_ids: only an image with POSIX timers needs it (none here);
      // its refusal is RestoreZdtm.PosixTimersRefusedWithoutRestoreIds.
  };
  return table;
}
// Without these a delta cannot be trusted: every iteration is taken whole.
const std::set<std::string> kWholeEveryTime = {"uffd_wp_unpopulated", "discarded_pages_written"};

bool refuses(const std::string& feature, const std::string& verb) {
  auto it = refusals().find(feature);
  return it != refusals().end() && it->second.count(verb) != 0;
}

std::string env_off(const std::string& feature) { return "WPCKPT_DISABLE_FEATURES=" + feature; }

nlohmann::json parse(const std::string& text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  return doc.is_discarded() ? nlohmann::json::object() : doc;
}

// What `wpckpt check --json` says is lost without the feature.
std::string loss_text(const std::string& feature) {
  CommandResult r = run_wpckpt({"check", "--json"}, {env_off(feature)});
  for (const auto& m : parse(r.out).value("missing", nlohmann::json::array()))
    if (m.value("feature", "") == feature) return m.value("loss", "");
  ADD_FAILURE() << "check does not list " << feature << " as missing when it is switched off: " << r.out;
  return {};
}

bool untraced_and_running(pid_t pid) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  return status.find("TracerPid:\t0\n") != std::string::npos && status.find("State:\tt") == std::string::npos &&
         status.find("State:\tT") == std::string::npos && status.find("State:\tZ") == std::string::npos;
}

void expect_refused(const CommandResult& r, const std::string& feature, const std::string& loss) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(feature), std::string::npos) << r.err;
  if (!loss.empty()) {
    EXPECT_NE(r.err.find(loss), std::string::npos) << "check says: " << loss << "\n" << r.err;
  }
}

class FeatureSwitch : public ::testing::TestWithParam<std::string> {};

TEST_P(FeatureSwitch, EveryVerbHonoursIt) {
  const std::string feature = GetParam();
  const std::string off = env_off(feature);
  const std::string loss = loss_text(feature);
  TempDir dir;
  std::vector<std::string> argv = {wpckpt_binary(), "run", "--", workload("zdtm_counter"), "0", "8"};

  // run
  if (refuses(feature, "run")) {
    expect_refused(run_wpckpt({"run", "--", workload("zdtm_counter"), "0", "8"}, {off}), feature, loss);
  }
  std::string out = (dir / "out.txt").string();
  ChildProcess proc = ChildProcess::start(argv, refuses(feature, "run") ? std::vector<std::string>{}
                                                                         : std::vector<std::string>{off}, out);
  KillByPid guard{proc.pid()};
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);
  const std::string pid = std::to_string(proc.pid());

  // pre-dump, twice: the second is a delta unless the switch forbids trusting one
  std::string pre1 = (dir / "pre1").string(), pre2 = (dir / "pre2").string();
  CommandResult r = run_wpckpt({"pre-dump", "-t", pid, "-D", pre1}, {off});
  if (refuses(feature, "pre-dump")) {
    expect_refused(r, feature, loss);
    EXPECT_FALSE(std::filesystem::exists(pre1));
    EXPECT_TRUE(untraced_and_running(proc.pid()));
    ASSERT_EQ(run_wpckpt({"pre-dump", "-t", pid, "-D", pre1}).exit_code, 0);
  } else {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_wpckpt({"pre-dump", "-t", pid, "-D", pre2, "--prev-images-dir", pre1, "--json"}, {off});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json doc = parse(r.out);
    EXPECT_EQ(doc.value("incremental", true), kWholeEveryTime.count(feature) == 0) << r.out;
    if (kWholeEveryTime.count(feature)) {
      EXPECT_NE(doc.value("whole_reason", "").find(feature), std::string::npos) << r.out;
    }
  }

  // watch has no fallback: it is the event queue
  if (refuses(feature, "watch")) {
    r = run_wpckpt({"watch", "-t", pid, "--count", "1", "--interval", "0.2"}, {off});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(feature), std::string::npos) << r.err;
    EXPECT_TRUE(untraced_and_running(proc.pid()));
  }

  // dump (kills the process once the image is committed)
  std::string img = (dir / "dump").string();
  r = run_wpckpt({"dump", "-t", pid, "-D", img}, {off});
  if (refuses(feature, "dump")) {
    expect_refused(r, feature, loss);
    EXPECT_FALSE(std::filesystem::exists(img));
    EXPECT_TRUE(untraced_and_running(proc.pid()));
    r = run_wpckpt({"dump", "-t", pid, "-D", img});
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  proc.wait();
  ASSERT_TRUE(pid_gone(proc.pid()));

  // show and verify need no feature
  EXPECT_EQ(run_wpckpt({"show", "-D", img}, {off}).exit_code, 0);
  EXPECT_EQ(run_wpckpt({"verify", "-D", img}, {off}).exit_code, 0);

  // restore
  if (refuses(feature, "restore")) {
    expect_refused(run_wpckpt({"restore", "-D", img}, {off}), feature, loss);
    EXPECT_TRUE(pid_gone(proc.pid()));
  }
  std::vector<std::string> restore_env;
  if (!refuses(feature, "restore")) restore_env.push_back(off);
  ChildProcess restore = ChildProcess::start({wpckpt_binary(), "restore", "-D", img}, restore_env);
  guard.pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return restored(proc.pid()); })) << "the restored process did not appear";
  ASSERT_EQ(::kill(proc.pid(), SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(restore.wait(std::chrono::seconds(60))), 0) << read_file(out);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
}

TEST(FeatureSwitches, TheTableNamesRealFeatures) {
  const std::vector<std::string>& keys = probe::feature_keys();
  for (const auto& [key, verbs] : refusals())
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << "no feature " << key;
  for (const std::string& key : kWholeEveryTime)
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << "no feature " << key;
}

INSTANTIATE_TEST_SUITE_P(Features, FeatureSwitch, ::testing::ValuesIn(probe::feature_keys()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace wpckpt::test
