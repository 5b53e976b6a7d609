"""Does an SQS server ever hand one FIFO group to two concurrent receivers? (It must not.)

    python scripts/probe_group_lock.py http://127.0.0.1:PORT
"""
import asyncio, sys, uuid

import aioboto3
async def main():
    s = aioboto3.Session()
    kw = dict(region_name="us-east-1", endpoint_url=sys.argv[1], aws_access_key_id="x", aws_secret_access_key="x")
    async with s.client("sqs", **kw) as c:
        overlaps = 0
        for trial in range(15):
            u = (await c.create_queue(QueueName=f"r{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}))["QueueUrl"]
            for b in range(6):
                await c.send_message_batch(QueueUrl=u, Entries=[{"Id": str(i), "MessageBody": "x", "MessageGroupId": f"g{i % 3}", "MessageDeduplicationId": f"{b}-{i}"} for i in range(10)])
            async def recv():
                r = await c.receive_message(QueueUrl=u, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageSystemAttributeNames=["All"])
                return {m["Attributes"]["MessageGroupId"] for m in r.get("Messages", [])}
            results = await asyncio.gather(*(recv() for _ in range(4)))
            seen = {}
            for i, groups in enumerate(results):
                for g in groups:
                    if g in seen: overlaps += 1
                    seen[g] = i
        print("same group handed to two concurrent receivers:", overlaps, "times in 15 trials")
asyncio.run(main())
