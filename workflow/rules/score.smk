# μ-scoring: MLLM logits of each query's top-C candidates, sharded by query range, gathered.


rule score_shard:
    input:
        model=mllm_dir,
        adapter="results/adapters/{adapter}",
        features=lambda w: f"results/features/{encoder_of(w.protocol)}/{target_of(w.protocol)}.npz",
    output:
        "results/scores/{adapter}/{protocol}.shard{shard}.npz",
    params:
        C=stored_C(),
        score=config["mllm"]["score"],
        prompt=lambda w: w.adapter.rsplit("_", 1)[1],
    resources:
        gpu=config["gpu"],
        mem_mb=32000,
        runtime=720,
    log:
        "logs/scores/{adapter}/{protocol}.shard{shard}.log",
    benchmark:
        "benchmarks/scores/{adapter}/{protocol}.shard{shard}.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/score_shard.py"


rule score_gather:
    input:
        features=lambda w: f"results/features/{encoder_of(w.protocol)}/{target_of(w.protocol)}.npz",
        shards=lambda w: expand(
            "results/scores/{adapter}/{protocol}.shard{shard}.npz",
            adapter=w.adapter,
            protocol=w.protocol,
            shard=range(config["mllm"]["score"]["shards"]),
        ),
    output:
        "results/scores/{adapter}/{protocol}.npz",
    log:
        "logs/scores/{adapter}/{protocol}.gather.log",
    benchmark:
        "benchmarks/scores/{adapter}/{protocol}.gather.tsv"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/score_gather.py"
