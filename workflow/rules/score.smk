# μ-scoring: MLLM logits of each query's top-C candidates. With mllm.score.shards = n > 1, each
# scores file is n jobs over query ranges, gathered; with 1, one job writes it.
# Zero-shot scoring (Table 6) uses the MLLM as it is; otherwise the adapter of <tuning>/<prompt>.

SHARDS = config["mllm"]["score"]["shards"]


if SHARDS == 1:

    rule score:
        input:
            unpack(score_inputs),
        output:
            "results/scores/{mllm}/{tuning}/{prompt}/{protocol}.npz",
        log:
            "logs/scores/{mllm}/{tuning}/{prompt}/{protocol}.log",
        benchmark:
            "benchmarks/scores/{mllm}/{tuning}/{prompt}/{protocol}.tsv"
        conda:
            "../envs/muse.yaml"
        threads: threads("score")
        resources:
            gpu=config["gpu"],
            mem_mb=memory("score"),
            runtime=720,
        params:
            C=stored_C(config),
            score=config["mllm"]["score"],
            shard="0/1",
        script:
            "../scripts/score_shard.py"

else:

    rule score_shard:
        input:
            unpack(score_inputs),
        output:
            "results/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.npz",
        log:
            "logs/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.log",
        benchmark:
            "benchmarks/scores/{mllm}/{tuning}/{prompt}/{protocol}.shard{shard}.tsv"
        conda:
            "../envs/muse.yaml"
        threads: threads("score_shard")
        resources:
            gpu=config["gpu"],
            mem_mb=memory("score_shard"),
            runtime=720,
        params:
            C=stored_C(config),
            score=config["mllm"]["score"],
            shard=lambda w: f"{w.shard}/{SHARDS}",
        script:
            "../scripts/score_shard.py"

    rule score_gather:
        input:
            features=lambda w: features_of(w.protocol),
            shards=expand(
                "results/scores/{{mllm}}/{{tuning}}/{{prompt}}/{{protocol}}.shard{shard}.npz",
                shard=range(SHARDS),
            ),
        output:
            "results/scores/{mllm}/{tuning}/{prompt}/{protocol}.npz",
        log:
            "logs/scores/{mllm}/{tuning}/{prompt}/{protocol}.gather.log",
        benchmark:
            "benchmarks/scores/{mllm}/{tuning}/{prompt}/{protocol}.gather.tsv"
        group:
            "tail"
        conda:
            "../envs/muse.yaml"
        script:
            "../scripts/score_gather.py"
