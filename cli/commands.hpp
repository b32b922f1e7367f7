// Every verb of wpckpt registers itself on the CLI11 app from its own file
// (cli/cmd_<verb>.cpp). A verb parses, calls the libraries and prints; it
// stores its exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace wpckpt::cli {

void add_check_command(CLI::App& app, int& exit_code);
void add_run_command(CLI::App& app, int& exit_code);
void add_pre_dump_command(CLI::App& app, int& exit_code);
void add_dump_command(CLI::App& app, int& exit_code);
void add_restore_command(CLI::App& app, int& exit_code);
void add_show_command(CLI::App& app, int& exit_code);
void add_verify_command(CLI::App& app, int& exit_code);
void add_merge_command(CLI::App& app, int& exit_code);
void add_cat_command(CLI::App& app, int& exit_code);
void add_watch_command(CLI::App& app, int& exit_code);
void add_iterate_command(CLI::App& app, int& exit_code);
void add_untrack_command(CLI::App& app, int& exit_code);
void add_page_server_command(CLI::App& app, int& exit_code);
void add_migrate_command(CLI::App& app, int& exit_code);
void add_snapshot_command(CLI::App& app, int& exit_code);

// Hidden: prints every verb with its options as JSON; the completion and man
// page tests compare it with completions/ and man/.
void add_cli_spec_command(CLI::App& app, int& exit_code);

}  // namespace wpckpt::cli
