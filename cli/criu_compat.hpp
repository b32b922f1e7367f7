// What CRIU's scripts pass, in one place, so that a script written for
// `criu` runs with `wpckpt`: the options the checkpoint verbs accept under
// CRIU's names, CRIU's numeric verbosity, and CRIU's --display-stats text.
// What each option does for us (and what it cannot mean) is in man/.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wpckpt::cli {

struct CriuOptions {
  bool track_mem = false;      // accepted: tracking is always on
  bool shell_job = false;      // -j: what it means is the verb's (see its man page)
  bool display_stats = false;  // CRIU's stats lines at the end
  std::string log_file;        // -o: inside -D unless absolute
  std::string network_lock = "nftables";  // dump, restore: "nftables" or "skip"
};

// --track-mem (when `track_mem`), -j/--shell-job, --display-stats and
// -o/--log-file on `verb`.
void add_criu_options(CLI::App* verb, CriuOptions& into, const char* shell_job_help, bool track_mem);

// A CRIU option that `verb` accepts and ignores (CRIU takes every option on
// every command, and scripts pass one set to every step); `why` is its help,
// after "Accepted for CRIU scripts: ".
void add_ignored_criu_flag(CLI::App* verb, const std::string& name, const std::string& why);

// --network-lock nftables|skip on dump and restore (lib/netlock): CRIU's
// option. Its default there, iptables, is refused by name: wpckpt locks with
// nftables only.
void add_network_lock_option(CLI::App* verb, CriuOptions& into);

// --ghost-limit SIZE on pre-dump, dump and snapshot: CRIU's option (deleted
// open files saved up to SIZE; K/M/G suffixes).
void add_ghost_limit_option(CLI::App* verb, uint64_t& into);

// CRIU's -v0 ... -v4 (our -v5 is trace): CLI11 would read "-v4" as "-v -4".
// Returns argv with each such word before "--" (and before the command of
// `run`) replaced by "--verbosity=N".
std::vector<std::string> numeric_verbosity_as_option(int argc, char** argv);

// What to do instead of a CRIU option that wpckpt does not have (`option`
// is its name, e.g. "--auto-dedup"); empty for any other word. The command
// line is refused as CRIU would refuse an unknown option, and this hint
// follows the error.
std::string_view criu_option_hint(std::string_view option);

// The CRIU options criu_option_hint() knows (for `wpckpt __cli-spec`: the
// man pages may name them).
std::vector<std::string_view> criu_options_with_hints();

// The hints for the words of a command line that CLI11 refused as "not
// expected" (`error` is its message): one line each, on stderr.
void print_criu_option_hints(const std::vector<std::string>& words, std::string_view error);

// CRIU's "Displaying dump stats" lines (its names and units: scripts parse
// them). On stdout, or on stderr when stdout carries a --json document.
struct DumpStatsText {
  uint64_t freezing_us = 0, frozen_us = 0, memdump_us = 0, memwrite_us = 0;
  uint64_t pages_scanned = 0, pages_skipped_parent = 0, pages_written = 0;
};
void display_dump_stats(const DumpStatsText& stats, bool json);
// CRIU's "Displaying restore stats": what we measure of it.
void display_restore_stats(uint64_t pages_restored, uint64_t restore_us, bool json);

}  // namespace wpckpt::cli
