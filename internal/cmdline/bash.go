package cmdline

import (
	"fmt"
	"slices"
	"strings"
)

// bashScript is the completion script; its placeholders are filled in by
// BashCompletion. It needs nothing from the bash-completion package, but
// uses _command_offset from it, when loaded, to complete the arguments of
// a command given as operand.
const bashScript = `# bash completion for @NAME@, generated from its option table
# (internal/cmdline): do not edit.

# _gopasta_@FUNC@_argument prints what the option word $1 takes as argument
# in the next word: a kind (file, interface, user or text) and keywords.
# It prints nothing if the word takes no argument, or holds it already.
_gopasta_@FUNC@_argument() {
	local word=$1 j
	if [[ $word != --* ]]; then
		# A group of short options: one that takes an argument ends the
		# group, and takes the next word only if it is the last character.
		for ((j = 1; j < ${#word}; j++)); do
			if [[ '@ARGSHORTS@' == *"${word:j:1}"* ]]; then
				((j == ${#word} - 1)) || return 0
				word=-${word:j:1}
				break
			fi
		done
	fi
	case $word in
@CASES@	esac
}

# _gopasta_@FUNC@_complete_argument completes $2 as the argument of the
# option word $1.
_gopasta_@FUNC@_complete_argument() {
	local kind words
	read -r kind words <<<"$(_gopasta_@FUNC@_argument "$1")"
	case $kind in
	file)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$2")
		;;
	interface) mapfile -t COMPREPLY < <(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$2") ;;
	user) mapfile -t COMPREPLY < <(compgen -u -- "$2") ;;
	esac
	if [[ -n $words ]]; then
		mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -W "$words" -- "$2")
	fi
}

# _gopasta_@FUNC@_operands completes the word $2, the operand at index
# $1 of COMP_WORDS or after it.
_gopasta_@FUNC@_operands() {
@OPERANDS@}

_gopasta_@FUNC@() {
	local cur=${COMP_WORDS[COMP_CWORD]} i=1 word skip
	COMPREPLY=()
	# Walk the options before the current word, as getopt_long in "+" mode
	# does: they end at "--" or at the first word that is not an option.
	while ((i < COMP_CWORD)); do
		word=${COMP_WORDS[i]}
		case $word in
		--)
			_gopasta_@FUNC@_operands $((i + 1)) "$cur"
			return
			;;
		-?*) ;;
		*)
			_gopasta_@FUNC@_operands "$i" "$cur"
			return
			;;
		esac
		skip=0
		if [[ $word == --* && ${COMP_WORDS[i + 1]} == = ]]; then
			skip=2 # bash splits "--name=value" into "--name", "=", "value"
		elif [[ -n $(_gopasta_@FUNC@_argument "$word") ]]; then
			skip=1
		fi
		if ((i + skip >= COMP_CWORD)); then
			[[ $cur == = ]] && cur= # "--name=" and nothing after it yet
			_gopasta_@FUNC@_complete_argument "$word" "$cur"
			return
		fi
		((i += skip + 1))
	done
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W '@OPTIONS@' -- "$cur")
		return
	fi
	_gopasta_@FUNC@_operands "$COMP_CWORD" "$cur"
}

complete -F _gopasta_@FUNC@ @NAMES@
`

// operandScripts completes operands, by the kind of Command.Operands.
var operandScripts = map[Completion]string{
	CompleteNothing: "\t:\n",
	CompleteFile: `	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -f -- "$2")
`,
	CompleteCommand: `	if (($1 == COMP_CWORD)); then
		mapfile -t COMPREPLY < <(compgen -c -- "$2" | sort -u)
	elif declare -F _command_offset >/dev/null; then
		_command_offset "$1"
	else
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$2")
	fi
`,
}

// completionKinds names the kinds of argument in the script.
var completionKinds = map[Completion]string{
	CompleteNothing:   "text",
	CompleteFile:      "file",
	CompleteInterface: "interface",
	CompleteUser:      "user",
}

// BashCompletion returns a bash completion script for the command, bound
// to each of names.
func (cmd *Command[C]) BashCompletion(names ...string) string {
	var cases strings.Builder
	var argShorts, options []string
	for i := range cmd.Options {
		opt := &cmd.Options[i]
		if opt.Group.Refused {
			continue
		}
		spellings := []string{"--" + opt.Long}
		if opt.Short != 0 {
			spellings = append(spellings, "-"+string(opt.Short))
		}
		options = append(options, spellings...)
		if !opt.takesArg() {
			continue
		}
		if opt.Short != 0 {
			argShorts = append(argShorts, string(opt.Short))
		}
		what := strings.Join(append([]string{completionKinds[opt.Complete]}, opt.Words...), " ")
		fmt.Fprintf(&cases, "\t%s) echo '%s' ;;\n", strings.Join(spellings, " | "), what)
	}
	slices.Sort(options)
	return strings.NewReplacer(
		"@NAME@", cmd.Name,
		"@FUNC@", strings.ReplaceAll(cmd.Name, "-", "_"),
		"@ARGSHORTS@", strings.Join(argShorts, ""),
		"@CASES@", cases.String(),
		"@OPERANDS@", operandScripts[cmd.Operands],
		"@OPTIONS@", strings.Join(options, " "),
		"@NAMES@", strings.Join(names, " "),
	).Replace(bashScript)
}
