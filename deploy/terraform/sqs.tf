# The FIFO queue sqs2pg consumes and its FIFO dead-letter queue.

locals {
  queue_name = "${var.queue_name}.fifo"
  dlq_name   = "${var.queue_name}-dlq.fifo"

  # SSE-SQS by default; SSE-KMS when a key is given (the two conflict in the provider: pass null, not false).
  sqs_use_kms = var.sqs_kms_key_arn != null

  deduplication_scope   = var.sqs_high_throughput ? "messageGroup" : "queue"
  fifo_throughput_limit = var.sqs_high_throughput ? "perMessageGroupId" : "perQueue"
}

resource "aws_sqs_queue" "dlq" {
  name       = local.dlq_name
  fifo_queue = true

  message_retention_seconds  = var.dlq_message_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  # as large as the source queue's: a dead-lettered message is copied with its body whole
  max_message_size      = var.queue_max_message_size
  deduplication_scope   = local.deduplication_scope
  fifo_throughput_limit = local.fifo_throughput_limit

  sqs_managed_sse_enabled           = local.sqs_use_kms ? null : true
  kms_master_key_id                 = local.sqs_use_kms ? var.sqs_kms_key_arn : null
  kms_data_key_reuse_period_seconds = local.sqs_use_kms ? var.sqs_kms_data_key_reuse_period_seconds : null
}

resource "aws_sqs_queue" "main" {
  name                        = local.queue_name
  fifo_queue                  = true
  content_based_deduplication = var.content_based_deduplication

  message_retention_seconds  = var.queue_message_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  max_message_size           = var.queue_max_message_size
  # Long polling by default for any consumer; sqs2pg sets WaitTimeSeconds itself (SQS2PG_RECEIVE_WAIT_S).
  receive_wait_time_seconds = 20
  deduplication_scope       = local.deduplication_scope
  fifo_throughput_limit     = local.fifo_throughput_limit

  sqs_managed_sse_enabled           = local.sqs_use_kms ? null : true
  kms_master_key_id                 = local.sqs_use_kms ? var.sqs_kms_key_arn : null
  kms_data_key_reuse_period_seconds = local.sqs_use_kms ? var.sqs_kms_data_key_reuse_period_seconds : null

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Only the source queue may use the DLQ as its dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.main.arn]
  })
}

# Refuse plain-HTTP access to both queues ("Version" must be set, or AWS hangs on the policy update).
data "aws_iam_policy_document" "queue_tls_only" {
  for_each = {
    main = aws_sqs_queue.main.arn
    dlq  = aws_sqs_queue.dlq.arn
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "tls_only" {
  for_each = {
    main = aws_sqs_queue.main.id
    dlq  = aws_sqs_queue.dlq.id
  }

  queue_url = each.value
  policy    = data.aws_iam_policy_document.queue_tls_only[each.key].json
}
