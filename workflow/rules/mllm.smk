# The MLLMs: tiny checkpoints of the embedded default, and LoRA fine-tuning of each on mined pairs.


rule init_tiny_mllm:
    output:
        directory("results/mllm/{mllm}"),
    log:
        "logs/mllm/init_tiny_{mllm}.log",
    benchmark:
        "benchmarks/mllm/init_tiny_{mllm}.tsv"
    conda:
        "../envs/muse.yaml"
    params:
        arch=lambda w: MLLMS[w.mllm].removeprefix("tiny:"),
    script:
        "../scripts/init_tiny_mllm.py"


rule sft:
    input:
        model=lambda w: mllm_dir(w.mllm),
        pairs="results/pairs/{src}_{strategy}.jsonl",
        val="results/pairs/{src}_{strategy}.val.jsonl",
    output:
        directory("results/adapters/{mllm}/{src}_{strategy}/{prompt}"),
    log:
        "logs/adapters/{mllm}/{src}_{strategy}/{prompt}.log",
    benchmark:
        "benchmarks/adapters/{mllm}/{src}_{strategy}/{prompt}.tsv"
    conda:
        "../envs/muse.yaml"
    threads: threads("sft")
    resources:
        gpu=SFT_GPUS,
        mem_mb=memory("sft"),
        runtime=1440,
    params:
        launch=sft_launch(SFT_GPUS),
        val=lambda w, input: f"--val-pairs {input.val}" if config["mining"].get("val_ids", 0) > 0 else "",
        args=lambda w: " ".join(
            f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
            for k, v in {**config["mllm"]["sft"], "prompt": w.prompt}.items()
            if v is not False
        ),
    shell:
        "{params.launch} -m muse.cli sft --model {input.model:q} --pairs {input.pairs:q} {params.val} "
        "--out {output:q} {params.args} > {log:q} 2>&1 || (tail -n 1 {log:q} >&2; exit 1)"


# The shipped pretrained judges (src/muse/mllm/pretrained/<arch>), rebuilt from scratch by the
# named target `snakemake --cores 2 pretrained_judges`: the open-world corpus, then each judge.


rule openworld_corpus:
    output:
        directory("results/openworld"),
    log:
        "logs/mllm/openworld_corpus.log",
    benchmark:
        "benchmarks/mllm/openworld_corpus.tsv"
    conda:
        "../envs/muse.yaml"
    params:
        corpus=config.get("pretrain", {}).get("corpus", {}),
    script:
        "../scripts/openworld_corpus.py"


rule pretrain_judge:
    input:
        "results/openworld",
    output:
        directory("results/pretrained/{arch}"),
    log:
        "logs/mllm/pretrain_{arch}.log",
    benchmark:
        "benchmarks/mllm/pretrain_{arch}.tsv"
    conda:
        "../envs/muse.yaml"
    threads: 2
    resources:
        gpu=config["gpu"],
    params:
        recipe=lambda w: {**config.get("pretrain", {}).get("recipe", {}), "arch": w.arch},
    script:
        "../scripts/pretrain_judge.py"


rule pretrained_judges:
    input:
        expand("results/pretrained/{arch}", arch=ARCHITECTURES),
