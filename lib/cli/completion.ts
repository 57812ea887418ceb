import type { Command as Program, Option } from 'commander';
import { EXIT, type CommandArgs } from './commands/types.js';

// `jobmanager completion bash`: a bash completion script made from the command tree itself, so
// it knows every command and option the parser knows (and never a hidden one). It completes
// commands, each command's options and the global ones, the values of options that have a fixed
// set (--state), and file names where a command takes files (and after --config).

export async function completionCommand(args: CommandArgs, program: Program): Promise<number> {
  const shell = args.positionals[0];
  if (shell !== 'bash') {
    args.out.error(`completion ${shell}: only bash is supported (\`jobmanager completion bash\`)`);
    return EXIT.usage;
  }
  process.stdout.write(bashCompletion(program));
  return EXIT.ok;
}

const quote = (words: string[]) => `'${words.join(' ')}'`;

function flags(options: readonly Option[]): string[] {
  return options.filter((o) => !o.hidden).flatMap((o) => [o.long, o.short]).filter((f): f is string => Boolean(f));
}

export function bashCompletion(program: Program): string {
  const commands = program.createHelp().visibleCommands(program);
  const globals = [...flags(program.options), '--help'];
  const withValue = new Map<string, string>();
  for (const option of [...program.options, ...commands.flatMap((c) => c.options)]) {
    if (!option.required && !option.optional) continue;
    const value = option.argChoices ? `choices ${option.argChoices.join(' ')}` : /file/i.test(option.flags) ? 'files' : 'none';
    for (const flag of [option.long, option.short]) if (flag) withValue.set(flag, value);
  }
  const cases = commands.map((c) => {
    const takesFiles = c.registeredArguments.some((a) => /files/.test(a.name()));
    const operands = takesFiles ? 'files' : c.name() === 'completion' ? 'choices bash' : c.name() === 'help' ? `choices ${commands.map((x) => x.name()).join(' ')}` : 'none';
    return `    ${c.name()}) options=${quote(flags(c.options))}; operands="${operands}" ;;`;
  });
  const valueCases = [...withValue].map(([flag, value]) => `    ${flag}) _jobmanager_values "${value}"; return ;;`);
  return `# bash completion for jobmanager (made by \`jobmanager completion bash\`).
# Load it in this shell:    source <(jobmanager completion bash)
# or for every new shell:   jobmanager completion bash > ~/.local/share/bash-completion/completions/jobmanager

_jobmanager_values() {
  case "$1" in
    files) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
    choices*) COMPREPLY=($(compgen -W "\${1#choices }" -- "$cur")) ;;
    *) COMPREPLY=() ;;
  esac
}

_jobmanager() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" command="" i word
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command is the first word that is neither an option nor an option's value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      --config) ((i++)) ;;
      -*) ;;
      *) command="$word"; break ;;
    esac
  done
  case "$prev" in
${valueCases.join('\n')}
  esac
  local options="" operands="none"
  case "$command" in
    "") COMPREPLY=($(compgen -W ${quote([...commands.map((c) => c.name()), ...globals])} -- "$cur")); return ;;
${cases.join('\n')}
    *) return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$options ${globals.join(' ')}" -- "$cur"))
  else
    _jobmanager_values "$operands"
  fi
}

complete -F _jobmanager jobmanager
`;
}
