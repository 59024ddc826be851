// Subcommands of the `frugal` command-line tool. Each `add_*` registers its
// options on the app; the callback runs the command. Errors propagate as
// frugal::Error and are reported by main().
#pragma once

#include <CLI/CLI.hpp>

namespace frugal::cli {

void add_run_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_beam_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_kb_command(CLI::App& app);
void add_ask_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_retrofit_command(CLI::App& app);
void add_lora_command(CLI::App& app);
void add_finetune_command(CLI::App& app);
void add_oae_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace frugal::cli
