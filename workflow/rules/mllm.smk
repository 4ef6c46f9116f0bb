# The MLLMs: tiny checkpoints of the embedded default, and LoRA fine-tuning of each on mined pairs.


rule init_tiny_mllm:
    output:
        directory("results/mllm/{mllm}"),
    params:
        arch=lambda w: MLLMS[w.mllm].removeprefix("tiny:"),
    log:
        "logs/mllm/init_tiny_{mllm}.log",
    benchmark:
        "benchmarks/mllm/init_tiny_{mllm}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/init_tiny_mllm.py"


rule sft:
    input:
        model=lambda w: mllm_dir(w.mllm),
        pairs="results/pairs/{src}_{strategy}.jsonl",
    output:
        directory("results/adapters/{mllm}/{src}_{strategy}/{prompt}"),
    params:
        launch=sft_launch(SFT_GPUS),
        args=lambda w: " ".join(f"--{k.replace('_', '-')} {v}"
                                for k, v in {**config["mllm"]["sft"], "prompt": w.prompt}.items()),
    resources:
        gpu=SFT_GPUS,
        mem_mb=32000,
        runtime=1440,
    log:
        "logs/adapters/{mllm}/{src}_{strategy}/{prompt}.log",
    benchmark:
        "benchmarks/adapters/{mllm}/{src}_{strategy}/{prompt}.tsv"
    conda:
        "../envs/muse.yaml"
    shell:
        "{params.launch} -m muse.cli sft --model {input.model:q} --pairs {input.pairs:q} --out {output:q} "
        "{params.args} > {log:q} 2>&1"
