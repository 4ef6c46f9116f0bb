# The MLLM judge: the tiny checkpoint of the embedded default, and LoRA fine-tuning.


rule init_tiny_mllm:
    output:
        directory("results/mllm/tiny"),
    log:
        "logs/mllm/init_tiny.log",
    benchmark:
        "benchmarks/mllm/init_tiny.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/init_tiny_mllm.py"


rule sft:
    input:
        model=mllm_dir,
        pairs="results/pairs/{src}_{strategy}.jsonl",
    output:
        directory("results/adapters/{src}_{strategy}_{prompt}"),
    params:
        sft=lambda w: {**config["mllm"]["sft"], "prompt": w.prompt},
    resources:
        gpu=config["gpu"],
        mem_mb=32000,
        runtime=1440,
    log:
        "logs/adapters/{src}_{strategy}_{prompt}.log",
    benchmark:
        "benchmarks/adapters/{src}_{strategy}_{prompt}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/sft.py"
