# loom.bash - bash completion for loom(1): subcommands, each one's options, option values
# (optimizers, splits, ...), zoo model names, model files, images and directories.
# Installed as share/bash-completion/completions/loom; or: source completions/loom.bash
# shellcheck disable=SC2207 # COMPREPLY=($(compgen ...)) is the completion idiom

_loom_zoo() {
    "${COMP_WORDS[0]}" models 2>/dev/null | awk '{print $1}'
}

# The flags of a command as its --help lists them (train, cv and tune build theirs from the
# library's settings table, so a new setting completes without a change here).
_loom_flags() {
    "${COMP_WORDS[0]}" "$1" --help 2>/dev/null | grep -o -e '--[a-z][a-z0-9-]*' | sort -u
}

_loom() {
    local cur prev cmd i
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="study train eval summary models report bench plot cv tune compare predict export import quantize help"

    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}

    # option values
    case $prev in
    --optimizer) COMPREPLY=($(compgen -W "sgd adam adamw rmsprop" -- "$cur")); return ;;
    --split) COMPREPLY=($(compgen -W "test val train" -- "$cur")); return ;;
    --split-mode) COMPREPLY=($(compgen -W "stratified keras" -- "$cur")); return ;;
    --lr-schedule) COMPREPLY=($(compgen -W "constant step exp cosine plateau" -- "$cur")); return ;;
    --algorithm) COMPREPLY=($(compgen -W "random hyperband" -- "$cur")); return ;;
    --objective) COMPREPLY=($(compgen -W "val_acc val_loss val_f1" -- "$cur")); return ;;
    --refit) COMPREPLY=($(compgen -W "split all" -- "$cur")); return ;;
    --column) COMPREPLY=($(compgen -W "val_acc acc val_loss loss" -- "$cur")); return ;;
    --data | --out | -o | --save-preprocessed) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --resume) [ "$cmd" = train ] && COMPREPLY=($(compgen -d -- "$cur")) && return ;;
    --gray) COMPREPLY=($(compgen -W "luma mean red green blue" -- "$cur")); return ;;
    --augment) COMPREPLY=($(compgen -W "none flip flip,shift:2 shift:2 mixup cutmix" -- "$cur")); return ;;
    --precision) COMPREPLY=($(compgen -W "fp32 bf16" -- "$cur")); return ;;
    --tta) COMPREPLY=($(compgen -W "none flip" -- "$cur")); return ;;
    --weights) COMPREPLY=($(compgen -f -X '!*.safetensors' -- "$cur") $(compgen -d -- "$cur")); return ;;
    --images | --labels | --idx | --overlay) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --epochs | --batch | --lr | --momentum | --l2 | --weight-decay | --clip-norm | --label-smoothing | --ema | \
        --early-stopping | --seed | --threads | --val-split | --subset | --test-subset | \
        --log-every | --checkpoint-every | --checkpoint-steps | --folds | --trials | \
        --executions-per-trial | --cv | --eta | --budget-minutes | --repeats | --seconds | \
        --alpha | --top | --input | --calibrate | --percentile)
        return ;;
    esac

    local opts=""
    case $cmd in
    train | cv | tune) opts="$(_loom_flags "$cmd") --no-plots" ;;
    eval) opts="--split --images --labels --data --out --batch --threads --tta" ;;
    study) opts="--quick --resume --force --out --data --threads --print" ;;
    report) opts="-o --out --data" ;;
    summary) opts="--input" ;;
    models) opts="-v" ;;
    bench) opts="--batch --repeats --seconds --threads --layers --int8 --precision --infer-only" ;;
    plot) opts="--svg --overlay --column" ;;
    compare) opts="--out --alpha" ;;
    export) opts="-o --out --format --prefix --int8" ;;
    quantize) opts="-o --out --calibrate --percentile --seed --data --threads" ;;
    import) opts="-o --out --weights --input" ;;
    predict) opts="--top --json --idx --save-preprocessed --gray --invert --no-invert --no-crop --no-fit
        --threads" ;;
    help)
        [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "${commands% help}" -- "$cur"))
        return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi

    # the first argument that is not an option or an option's value
    local n_args=0
    for ((i = 2; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --nesterov | --force | --standardize | --no-test | --quiet | --test | --no-best | \
            --verbose | --svg | --json | --invert | --no-invert | --no-crop | --no-fit | -v | \
            --quick | --print | --int8 | --infer-only) ;;
        --resume) [ "$cmd" = train ] && ((i++)) ;;
        -*) ((i++)) ;;
        *) ((n_args++)) ;;
        esac
    done
    case $cmd in
    train | cv | summary | bench)
        [ "$n_args" -eq 0 ] || [ "$cmd" = bench ] &&
            COMPREPLY=($(compgen -W "$(_loom_zoo) all" -- "$cur") $(compgen -f -- "$cur")) ;;
    export)
        if [ "$prev" = --format ]; then
            COMPREPLY=($(compgen -W "onnx safetensors c" -- "$cur"))
        elif [ "$n_args" -eq 0 ]; then
            COMPREPLY=($(compgen -f -X '!*.loom' -- "$cur") $(compgen -d -- "$cur"))
        fi ;;
    import)
        if [ "$prev" = --weights ]; then
            COMPREPLY=($(compgen -f -X '!*.safetensors' -- "$cur") $(compgen -d -- "$cur"))
        elif [ "$n_args" -eq 0 ]; then
            COMPREPLY=($(compgen -W "$(_loom_zoo)" -- "$cur") $(compgen -f -- "$cur"))
        fi ;;
    eval | quantize)
        [ "$n_args" -eq 0 ] &&
            COMPREPLY=($(compgen -f -X '!*.loom' -- "$cur") $(compgen -d -- "$cur")) ;;
    predict)
        if [ "$n_args" -eq 0 ]; then
            COMPREPLY=($(compgen -f -X '!*.loom' -- "$cur") $(compgen -d -- "$cur"))
        else
            local ext
            for ext in png PNG jpg JPG jpeg JPEG pgm ppm pnm; do
                COMPREPLY+=($(compgen -f -X "!*.$ext" -- "$cur"))
            done
            COMPREPLY+=($(compgen -d -- "$cur"))
        fi ;;
    plot | compare | report) COMPREPLY=($(compgen -d -- "$cur")) ;;
    tune | study) [ "$n_args" -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -o filenames -F _loom loom
