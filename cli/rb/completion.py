"""A bash completion script generated from the parser, so it never falls behind it."""

from __future__ import annotations

import argparse


def _words(parser: argparse.ArgumentParser, path: str, out: dict[str, list[str]]) -> None:
    words: list[str] = []
    for action in parser._actions:
        words += [o for o in action.option_strings if o.startswith("--") or o == "-o"]
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                _words(sub, f"{path} {name}".strip(), out)
    out[path] = words


def bash_script(parser: argparse.ArgumentParser) -> str:
    table: dict[str, list[str]] = {}
    _words(parser, "", table)
    cases = "\n".join(f'    "{path}") words="{" ".join(words)}" ;;' for path, words in table.items())
    paths = "|".join(path for path in table if path)
    return f"""# rb completion: eval "$(rb completion bash)"
_rb_words() {{
  case "$1" in
{cases}
  esac
  echo "$words"
}}
_rb_complete() {{
  local path="" cand words="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    cand="${{path:+$path }}${{COMP_WORDS[i]}}"
    case "|{paths}|" in *"|$cand|"*) path="$cand" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_rb_words "$path")" -- "${{COMP_WORDS[COMP_CWORD]}}"))
}}
complete -F _rb_complete rb
"""
