#!/bin/sh
# Prints, for every zoo model, the weights CRC-32 of a short training run (receipt.txt) at 1 and
# 2 threads and a digest of `loom eval`'s predictions.csv (every probability) at both thread
# counts and two batch sizes. Two runs of this script on two commits compare whether a change
# kept the numbers bit for bit:  sh bench/receipts.sh >before.txt; ...; diff before.txt after.txt
# Usage: sh bench/receipts.sh [MODEL...]   (LOOM=path/to/loom, SUBSET=1000, EPOCHS=1)
LOOM=${LOOM:-build/loom}
SUBSET=${SUBSET:-1000}
EPOCHS=${EPOCHS:-1}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM
models=${*:-$("$LOOM" models | awk '{print $1}')}
for m in $models; do
    for th in 1 2; do
        "$LOOM" train "$m" --subset "$SUBSET" --epochs "$EPOCHS" --threads "$th" --no-plots --quiet \
            --out "$T/$m-$th" >/dev/null 2>&1 || { echo "$m threads=$th: train failed"; continue; }
        crc=$(sed -n 's/^weights_crc32[ =:]*//p' "$T/$m-$th/receipt.txt")
        echo "$m train threads=$th weights_crc32 $crc"
    done
    for th in 1 2; do
        for b in 1 256; do
            "$LOOM" eval "$T/$m-1/model.loom" --threads "$th" --batch "$b" --out "$T/$m-e$th-$b" \
                >/dev/null 2>&1 || { echo "$m eval threads=$th batch=$b: failed"; continue; }
            echo "$m eval threads=$th batch=$b predictions $(cksum <"$T/$m-e$th-$b/predictions.csv" | cut -d' ' -f1)"
        done
    done
done
