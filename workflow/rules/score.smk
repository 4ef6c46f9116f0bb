# μ-scoring: MLLM logits of each query's top-C candidates, sharded by query range, gathered.
# Zero-shot scoring (Table 6) uses the MLLM as it is; otherwise the adapter of <tuning>/<prompt>.


rule score_shard:
    input:
        unpack(score_inputs),
    output:
        "results/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.npz",
    params:
        C=stored_C(),
        score=config["mllm"]["score"],
    resources:
        gpu=config["gpu"],
        mem_mb=32000,
        runtime=720,
    log:
        "logs/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.log",
    benchmark:
        "benchmarks/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/score_shard.py"


rule score_gather:
    input:
        features=lambda w: features_of(w.protocol),
        shards=expand(
            "results/scores/{{mllm}}/{{tuning}}/{{prompt}}/{{protocol}}.shard{shard}.npz",
            shard=range(config["mllm"]["score"]["shards"]),
        ),
    output:
        "results/scores/{mllm}/{tuning}/{prompt}/{protocol}.npz",
    log:
        "logs/scores/{mllm}/{tuning}/{prompt}/{protocol}.gather.log",
    benchmark:
        "benchmarks/scores/{mllm}/{tuning}/{prompt}/{protocol}.gather.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/score_gather.py"
