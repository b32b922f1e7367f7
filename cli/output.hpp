// How the CLI speaks: errors as "wpckpt: error: ..." (or a JSON object with
// --json), JSON documents on stdout, and the exit codes of every verb.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "lib/base/result.hpp"

namespace wpckpt::cli {

// Exit codes shared by all verbs.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;     // the operation failed (or, for check/verify, the answer is "no")
constexpr int kExitUsage = 2;       // bad command line, unknown name

// Prints the error (text to stderr, or {"error": {...}} to stdout with json)
// and returns kExitFailure.
int report_error(const Error& error, bool json);
// A usage problem found after parsing (e.g. a bad address): exit 2.
int report_usage(const std::string& message, bool json);
void print_json(const nlohmann::json& doc);
nlohmann::json error_json(const Error& error);

}  // namespace wpckpt::cli
