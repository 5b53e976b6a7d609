# One customer-managed key for this stack's data at rest: Aurora storage and Performance Insights, the
# RDS-managed master secret, the application's DATABASE_URL secret, the CloudWatch log groups and ECR.
# (The queues use SSE-SQS unless var.sqs_kms_key_arn names a key: producers then need access to it too.)

resource "aws_kms_key" "data" {
  description             = "${var.name}: data at rest (Aurora, secrets, logs, ECR)"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key; every other use is granted through IAM policies (the roles in
        # iam.tf and proxy.tf) or through grants that RDS, Secrets Manager and ECR create for themselves.
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsForThisStack"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = [
              "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/ecs/${var.name}",
              "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/rds/cluster/${var.name}/*",
            ]
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}
