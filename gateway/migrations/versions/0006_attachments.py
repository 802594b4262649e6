"""attachments: documents by content hash, the documents each request carries,
officers' credentials

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

A control carries its legal document (PDF) and is proposed by an officer whose
work card and official-duty card are on file; agencies that poll fetch both by
request key. A document is stored once, named by its SHA-256. A control the
gateway makes itself names the officer's request it carries out
(requests.source_request_id): it carries that request's documents and shows its
officers' credentials.
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=128), nullable=False),
        sa.Column("court_code", sa.String(length=32), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_documents")),
    )
    op.create_table(
        "request_documents",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_request_documents_request_id_requests")),
        sa.ForeignKeyConstraint(["document_sha256"], ["documents.sha256"],
                                name=op.f("fk_request_documents_document_sha256_documents")),
        sa.PrimaryKeyConstraint("request_id", "position", name=op.f("pk_request_documents")),
    )
    op.create_index(op.f("ix_request_documents_document_sha256"), "request_documents", ["document_sha256"], unique=False)
    op.create_table(
        "officer_credentials",
        sa.Column("officer_sub", sa.String(length=128), nullable=False),
        sa.Column("court_code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("work_card_number", sa.String(length=32), nullable=False),
        sa.Column("duty_card_number", sa.String(length=32), nullable=False),
        sa.Column("work_card_image_sha256", sa.String(length=64), nullable=False),
        sa.Column("duty_card_image_sha256", sa.String(length=64), nullable=False),
        sa.Column("filed_by", sa.String(length=128), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["work_card_image_sha256"], ["documents.sha256"],
                                name=op.f("fk_officer_credentials_work_card_image_sha256_documents")),
        sa.ForeignKeyConstraint(["duty_card_image_sha256"], ["documents.sha256"],
                                name=op.f("fk_officer_credentials_duty_card_image_sha256_documents")),
        sa.PrimaryKeyConstraint("officer_sub", name=op.f("pk_officer_credentials")),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("source_request_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("source_request_id")
    op.drop_table("officer_credentials")
    op.drop_index(op.f("ix_request_documents_document_sha256"), table_name="request_documents")
    op.drop_table("request_documents")
    op.drop_table("documents")
