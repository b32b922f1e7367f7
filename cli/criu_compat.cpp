#include "cli/criu_compat.hpp"

#include <cstdio>
#include <cstring>

namespace wpckpt::cli {

void add_criu_options(CLI::App* verb, CriuOptions& into, const char* shell_job_help, bool track_mem) {
  if (track_mem)
    verb->add_flag("--track-mem", into.track_mem, "Accepted for CRIU scripts: memory tracking is always on");
  verb->add_flag("-j,--shell-job", into.shell_job, shell_job_help);
  verb->add_flag("--display-stats", into.display_stats, "Print CRIU's statistics lines at the end");
  verb->add_option("-o,--log-file", into.log_file, "Write the log to FILE, inside -D unless absolute (as CRIU)");
}

void add_ignored_criu_flag(CLI::App* verb, const std::string& name, const std::string& why) {
  verb->add_flag(name)->description("Accepted for CRIU scripts: " + why);
}

void add_network_lock_option(CLI::App* verb, CriuOptions& into) {
  verb->add_option("--network-lock", into.network_lock,
                   "Drop the packets of established TCP connections between dump and restore: nftables "
                   "(default) or skip")
      ->check([](const std::string& v) -> std::string {
        if (v == "nftables" || v == "skip") return {};
        if (v == "iptables") return "iptables is not supported: wpckpt locks with nftables (the default) or skip";
        return "must be nftables or skip";
      });
}

void add_ghost_limit_option(CLI::App* verb, uint64_t& into) {
  verb->add_option("--ghost-limit", into, "Save deleted open files up to SIZE (bytes, or with K/M/G; default 1M, as CRIU)")
      ->transform(CLI::AsSizeValue(false));
}

namespace {

struct CriuOptionHint {
  const char* option;
  const char* hint;
};

constexpr const char* kWorkDir =
    "there is no work directory: -o FILE is written inside -D unless FILE is absolute, and --pidfile is a path as "
    "given";
constexpr const char* kMounts =
    "mounts are not checkpointed (a process in a mount namespace other than wpckpt's is refused): leave it out";

// CRIU options that scripts pass and wpckpt does not take, with what to do instead.
constexpr CriuOptionHint kCriuOptionHints[] = {
    {"--auto-dedup",
     "a delta never rewrites its parent image, so there is nothing to deduplicate; `wpckpt merge -D DIR -o OUT` "
     "squashes a chain into one image"},
    {"--link-remap",
     "deleted open files are saved by their contents up to --ghost-limit (default 1M); raise it instead"},
    {"--manage-cgroups",
     "cgroups are not checkpointed: the restored process joins the cgroup of `wpckpt restore`; leave it out"},
    {"--cgroup-root", "cgroups are not checkpointed; leave it out"},
    {"--freeze-cgroup",
     "wpckpt freezes the process itself (ptrace), and a pre-dump does not freeze it at all; leave it out"},
    {"-W", kWorkDir},
    {"--work-dir", kWorkDir},
    {"--root", "a process is restored under the root of `wpckpt restore`; run wpckpt in that root instead"},
    {"--inherit-fd", "descriptors are re-created from the image; an fd cannot be passed in"},
    {"--restore-sibling",
     "the restored process is a child of `wpckpt restore`, or detached from it with -d"},
    {"--leave-stopped", "a dump kills the process or lets it run on (-R); it cannot leave it stopped"},
    {"--skip-in-flight",
     "a listener with connections waiting to be accepted is refused by name; dump again once they are accepted"},
    {"--lazy-pages",
     "post-copy here: a plain dump, then `wpckpt page-server --lazy` on the source and `wpckpt restore --lazy "
     "--page-server` on the destination (wpckpt-page-server(1)), or `wpckpt migrate` for all of it"},
    {"--external", kMounts},
    {"--ext-mount-map", kMounts},
    {"--skip-mnt", kMounts},
    {"--enable-fs", kMounts},
    {"--evasive-devices", kMounts},
    {"--action-script", "no hooks are run; run the commands before and after wpckpt in the script itself"},
};

// "--opt=value" -> "--opt".
std::string_view option_name(std::string_view word) { return word.substr(0, word.find('=')); }

}  // namespace

std::string_view criu_option_hint(std::string_view option) {
  for (const CriuOptionHint& h : kCriuOptionHints)
    if (option == h.option) return h.hint;
  return {};
}

std::vector<std::string_view> criu_options_with_hints() {
  std::vector<std::string_view> out;
  for (const CriuOptionHint& h : kCriuOptionHints) out.push_back(h.option);
  return out;
}

void print_criu_option_hints(const std::vector<std::string>& words, std::string_view error) {
  for (size_t i = 1; i < words.size(); ++i) {
    if (words[i] == "--") break;  // the rest belongs to a command
    std::string_view name = option_name(words[i]);
    std::string_view hint = criu_option_hint(name);
    if (hint.empty() || error.find(name) == std::string_view::npos) continue;
    std::fprintf(stderr, "wpckpt: hint: %.*s (CRIU's): %.*s\n", static_cast<int>(name.size()), name.data(),
                 static_cast<int>(hint.size()), hint.data());
  }
}

std::vector<std::string> numeric_verbosity_as_option(int argc, char** argv) {
  std::vector<std::string> out;
  bool rewrite = true;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && (a == "--" || a == "run")) rewrite = false;  // the rest belongs to the command
    if (rewrite && i > 0 && a.size() == 3 && a[0] == '-' && a[1] == 'v' && a[2] >= '0' && a[2] <= '5')
      a = std::string("--verbosity=") + a[2];
    out.push_back(std::move(a));
  }
  return out;
}

namespace {

void line(std::FILE* to, const char* what, uint64_t n) {
  std::fprintf(to, "%s: %llu (0x%llx)\n", what, static_cast<unsigned long long>(n), static_cast<unsigned long long>(n));
}
void time_line(std::FILE* to, const char* what, uint64_t us) {
  std::fprintf(to, "%s: %llu us\n", what, static_cast<unsigned long long>(us));
}

}  // namespace

void display_dump_stats(const DumpStatsText& s, bool json) {
  std::FILE* to = json ? stderr : stdout;
  std::fprintf(to, "Displaying dump stats:\n");
  time_line(to, "Freezing time", s.freezing_us);
  time_line(to, "Frozen time", s.frozen_us);
  time_line(to, "Memory dump time", s.memdump_us);
  time_line(to, "Memory write time", s.memwrite_us);
  line(to, "Memory pages scanned", s.pages_scanned);
  line(to, "Memory pages skipped from parent", s.pages_skipped_parent);
  line(to, "Memory pages written", s.pages_written);
  std::fflush(to);
}

void display_restore_stats(uint64_t pages_restored, uint64_t restore_us, bool json) {
  std::FILE* to = json ? stderr : stdout;
  std::fprintf(to, "Displaying restore stats:\n");
  line(to, "Pages restored", pages_restored);
  time_line(to, "Restore time", restore_us);
  std::fflush(to);
}

}  // namespace wpckpt::cli
